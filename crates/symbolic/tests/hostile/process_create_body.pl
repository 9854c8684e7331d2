near_factor(2.0).
relation_modifier(ship, located_near, harbor, 1.2) :-
    process_create(path(touch), ['@DIR@/created'], []).
