% Recursion that is not tail recursive: its stack grows with N.
deep(0) :- !.
deep(N) :- N1 is N - 1, deep(N1), true.
confidence_modifier(ship, harbor, 1.2) :- deep(100000000).
