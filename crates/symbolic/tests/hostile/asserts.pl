% A rule that rewrites the rule base while it runs.
confidence_modifier(ship, harbor, 1.2) :-
    assertz(confidence_modifier(plane, ship, 9.0)).
