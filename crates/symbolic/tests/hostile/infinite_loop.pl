% A loop the inference limit stops.
spin :- spin.
confidence_modifier(ship, harbor, 1.2) :- spin.
