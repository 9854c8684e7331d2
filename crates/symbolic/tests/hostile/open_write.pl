% Writes a file from a rule body.
overlap_ratio(0.5) :-
    open('@DIR@/created', write, S),
    write(S, x),
    close(S).
