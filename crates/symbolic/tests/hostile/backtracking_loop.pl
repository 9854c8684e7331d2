% Endless backtracking into between/3 (10^15 solutions, each one fails).
confidence_modifier(ship, harbor, 1.2) :- between(1, 1000000000000000, _), fail.
