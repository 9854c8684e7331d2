% One inference that never ends: a number with billions of digits.
confidence_modifier(ship, harbor, 1.2) :- X is 7 ^ (10 ^ 12), X > 0.
