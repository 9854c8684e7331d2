% Asks for a list of 400 million cells.
confidence_modifier(ship, harbor, 1.2) :- length(L, 400000000), L = [_|_].
