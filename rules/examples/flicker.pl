% Rule over tracks: flicker. A track seen in at most two frames while the scene around it is stable (at least three
% other tracks, each seen for 2 s or more, that cover its whole life) is the detector flickering on clutter, not an
% object passing through.
adjust_track(T, 0.5, flicker(frames(N), stable_tracks(K))) :-
    track(T, _, First, Last, N),
    N =< 2,
    findall(O, stable_around(T, First, Last, O), Os),
    length(Os, K),
    K >= 3.

stable_around(T, First, Last, O) :-
    track(O, _, F0, L0, _),
    O =\= T,
    F0 =< First,
    L0 >= Last,
    L0 - F0 >= 2.0.
