% Rule over tracks: ships move on water. A ship track that lies on, overlaps or touches two or more land objects
% (vehicles, courts, fields, storage tanks, roundabouts), each for a second or more of its life, is crossing land:
% a lorry or a long roof, not a ship.
land(small_vehicle).
land(large_vehicle).
land(tennis_court).
land(basketball_court).
land(ground_track_field).
land(soccer_ball_field).
land(storage_tank).
land(roundabout).

adjust_track(S, 0.4, ship_over_land(land_neighbours(N))) :-
    track(S, ship, _, _, _),
    setof(B, land_contact(S, B), Bs),
    length(Bs, N),
    N >= 2.

land_contact(S, B) :-
    track_relation(R, S, B, From, To),
    contact(R),
    To - From >= 1.0,
    track(B, C, _, _, _),
    land(C).

contact(located_on).
contact(overlaps).
contact(adjacent_to).
