confidence_modifier(ship, harbor, 1.2).
:- halt.
