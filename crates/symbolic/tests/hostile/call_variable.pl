% Builds a goal at run time and calls it.
confidence_modifier(ship, harbor, 1.2) :- G =.. [shell, 'touch @DIR@/created'], call(G).
