% Scene rule: the only ship of a scene with no harbour and no bridge is likely on land (a roof, a container, a
% swimming pool seen at an angle): ships appear in groups, at harbours, or under bridges.
adjust(S, 0.85, lone_ship_without(harbor, bridge)) :-
    class_count(ship, 1),
    class_count(harbor, 0),
    class_count(bridge, 0),
    detection(S, ship, _, _, _, _, _, _).
