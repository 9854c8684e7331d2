% Rule over tracks: a storage tank does not move. A storage-tank track whose ground displacement (camera motion
% removed, measured on window means so jitter is not motion) is over 5 m is something else: a round roof on a
% vehicle, a boat seen from above. Needs a GSD (--gsd or georeferenced frames) for track_displacement_m/2.
adjust_track(T, 0.3, storage_tank_moved(metres(M))) :-
    track(T, storage_tank, _, _, _),
    track_displacement_m(T, D),
    D > 5.0,
    M is round(D).
