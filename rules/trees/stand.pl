% Candidate: trees grow in stands; a crown with at least three others near it (centres within twice the mean
% diagonal: located_near) is raised a little.
adjust(P, 1.1, in_a_stand(N)) :-
    detection(P, tree, _, _, _, _, _, _),
    findall(Q, (relation(located_near, P, Q), detection(Q, tree, _, _, _, _, _, _)), Qs),
    length(Qs, N),
    N >= 3.
:- use_module(library(lists)).
