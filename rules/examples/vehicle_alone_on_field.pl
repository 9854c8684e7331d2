% Scene rule: a single small vehicle standing on a sports field, with no other vehicle near it, is more likely a
% false detection (a mark on the pitch, equipment, a shadow) than a car: cars on pitches come in groups (events,
% maintenance crews) or park at the edge.
sports_field(tennis_court).
sports_field(basketball_court).
sports_field(soccer_ball_field).
sports_field(ground_track_field).
sports_field(baseball_diamond).

vehicle(small_vehicle).
vehicle(large_vehicle).

adjust(V, 0.7, alone_on(Field)) :-
    detection(V, small_vehicle, _, _, _, _, _, _),
    relation(located_on, V, F),
    detection(F, Field, _, _, _, _, _, _),
    sports_field(Field),
    \+ other_vehicle_near(V).

other_vehicle_near(V) :-
    relation(located_near, V, O),
    O \== V,
    detection(O, Class, _, _, _, _, _, _),
    vehicle(Class).
