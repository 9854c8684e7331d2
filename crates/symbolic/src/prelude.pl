% nsod's prelude for the rules worker: trusted code, loaded before the rule base. A rule base cannot call or
% redefine anything here except the scene predicates (detection/8, relation/3, class_count/2, image_size/2,
% gsd/1) and the track predicates (track/5, track_speed_px/2, track_speed_m/2, track_heading/2,
% track_displacement_px/2, track_displacement_m/2, track_relation/5), which the allow-list lets it call.

:- use_module(library(lists)).
:- use_module(library(between)).
:- use_module(library(pairs)).
:- use_module(library(ordsets)).
:- use_module(library(assoc)).
:- use_module(library(dif)).
:- use_module(library(error)).
:- use_module(library(iso_ext)).

% ---------------------------------------------------------------------------------------------------------------
% Reading the rule base: one term per call from user_input (the rule text), kept as pending until the allow-list
% has accepted every term.

'$nsod_read'(N, T, Vs, L0) :-
    stream_property(user_input, position(position_and_lines_read(_, L0))),
    read_term(user_input, T, [variable_names(Vs)]),
    (   T == end_of_file -> true
    ;   assertz('$nsod_pending'(N, T))
    ).

'$nsod_commit'(N) :-
    '$nsod_pending'(N, T),
    '$nsod_load_term'(T).

'$nsod_load_term'((:- D)) :- !, '$nsod_directive'(D).
'$nsod_load_term'(C) :- assertz(C).

% Accepted directives: libraries are all loaded already; discontiguous/1 means nothing to assertz.
'$nsod_directive'(dynamic(PIs)) :- !, '$nsod_declare'(PIs).
'$nsod_directive'(_).

'$nsod_declare'([]) :- !.
'$nsod_declare'([P|Ps]) :- !, '$nsod_declare'(P), '$nsod_declare'(Ps).
'$nsod_declare'((A, B)) :- !, '$nsod_declare'(A), '$nsod_declare'(B).
'$nsod_declare'(F/N) :- functor(H, F, N), assertz(H), retract(H).

'$nsod_count'(F, N, C) :-
    functor(G, F, N),
    findall(x, G, L),
    length(L, C).

% ---------------------------------------------------------------------------------------------------------------
% Scene facts of one image. The scene is one term held in a backtrackable global variable for the duration of the
% query (no copy); lookups by id are O(1) through blocks of 250 (compound arity is limited), enumeration by class
% walks that class's ids only.

'$nsod_scene'(W, H, G, Dets, Adj, Counts, ByClass) :-
    length(Dets, N),
    '$nsod_blocks'(Dets, DB),
    '$nsod_blocks'(Adj, AB),
    bb_b_put('$nsod_tracks', ts(t, [], [])),
    bb_b_put('$nsod_scene', s(W, H, G, N, Dets, DB, AB, Counts, ByClass)).

'$nsod_blocks'(List, Blocks) :-
    '$nsod_chunks'(List, Chunks),
    '$nsod_block_terms'(Chunks, Ts),
    Blocks =.. [t|Ts].

'$nsod_chunks'([], []) :- !.
'$nsod_chunks'(L, [C|Cs]) :- '$nsod_take'(250, L, C, Rest), '$nsod_chunks'(Rest, Cs).

'$nsod_take'(0, L, [], L) :- !.
'$nsod_take'(_, [], [], []) :- !.
'$nsod_take'(N, [X|Xs], [X|Ys], R) :- N1 is N - 1, '$nsod_take'(N1, Xs, Ys, R).

'$nsod_block_terms'([], []).
'$nsod_block_terms'([C|Cs], [T|Ts]) :- T =.. [b|C], '$nsod_block_terms'(Cs, Ts).

'$nsod_nth'(Blocks, I, E) :-
    B is I // 250 + 1,
    K is I mod 250 + 1,
    arg(B, Blocks, Block),
    arg(K, Block, E).

detection(Id, Class, Conf, Cx, Cy, W, H, Angle) :-
    bb_get('$nsod_scene', s(_, _, _, N, Dets, DB, _, _, ByClass)),
    (   integer(Id) ->
        Id >= 0, Id < N,
        '$nsod_nth'(DB, Id, d(Id, Class, Conf, Cx, Cy, W, H, Angle))
    ;   var(Id), atom(Class) ->
        memberchk(k(Class, Ids), ByClass),
        member(Id, Ids),
        '$nsod_nth'(DB, Id, d(Id, Class, Conf, Cx, Cy, W, H, Angle))
    ;   var(Id) ->
        member(d(Id, Class, Conf, Cx, Cy, W, H, Angle), Dets)
    ).

'$nsod_rel'(0, located_near).
'$nsod_rel'(1, adjacent_to).
'$nsod_rel'(2, located_on).
'$nsod_rel'(3, overlaps).

% Symmetric relations hold both ways, so they are listed once per subject only.
'$nsod_symmetric'(0).
'$nsod_symmetric'(3).

% Relation codes: Other * 4 + relation index. Per detection a(Out, In): Out, every relation where it is the
% subject; In, the directional relations (adjacent_to, located_on) where it is the object.
relation(R, S, O) :-
    bb_get('$nsod_scene', s(_, _, _, N, _, _, AB, _, _)),
    (   atom(R) -> '$nsod_rel'(Ri, R) ; var(R) ),
    (   integer(S) ->
        S >= 0, S < N,
        '$nsod_nth'(AB, S, a(Out, _)),
        member(K, Out), '$nsod_code'(K, Ri, O)
    ;   integer(O) ->
        var(S), O >= 0, O < N,
        '$nsod_nth'(AB, O, a(Out, In)),
        (   member(K, In), '$nsod_code'(K, Ri, S)
        ;   member(K, Out), '$nsod_code'(K, Ri, S), '$nsod_symmetric'(Ri)
        )
    ;   var(S), var(O) ->
        N1 is N - 1,
        between(0, N1, S),
        '$nsod_nth'(AB, S, a(Out, _)),
        member(K, Out), '$nsod_code'(K, Ri, O)
    ),
    '$nsod_rel'(Ri, R).

'$nsod_code'(K, Ri, X) :-
    Ri0 is K /\ 3,
    (   var(Ri) -> Ri = Ri0 ; Ri =:= Ri0 ),
    X is K >> 2.

class_count(Class, Count) :-
    bb_get('$nsod_scene', s(_, _, _, _, _, _, _, Counts, _)),
    member(c(Class, Count), Counts).

image_size(W, H) :-
    bb_get('$nsod_scene', s(W, H, _, _, _, _, _, _, _)).

gsd(G) :-
    bb_get('$nsod_scene', s(_, _, G0, _, _, _, _, _, _)),
    number(G0),
    G = G0.

% ---------------------------------------------------------------------------------------------------------------
% Track facts of one adjust_track/3 query (`nsod track`): tr(Id, Class, First, Last, Frames, SpeedPx, SpeedM,
% Heading, DisplacementPx, DisplacementM), `none` where a value is not defined, held like the scene (lookup by id
% through an AVL tree); r(Rel, A, B, From, To) the relations' time intervals. gsd/1 answers as in a scene.

'$nsod_tracks'(G, Tracks, Rels) :-
    '$nsod_track_pairs'(Tracks, Pairs),
    list_to_assoc(Pairs, A),
    bb_b_put('$nsod_scene', s(0, 0, G, 0, [], t, t, [], [])),
    bb_b_put('$nsod_tracks', ts(A, Tracks, Rels)).

'$nsod_track_pairs'([], []).
'$nsod_track_pairs'([T|Ts], [Id-T|Ps]) :- arg(1, T, Id), '$nsod_track_pairs'(Ts, Ps).

'$nsod_track'(Id, T) :-
    bb_get('$nsod_tracks', ts(A, Ts, _)),
    (   integer(Id) -> get_assoc(Id, A, T)
    ;   var(Id) -> member(T, Ts), arg(1, T, Id)
    ).

'$nsod_track_value'(Id, K, V) :-
    '$nsod_track'(Id, T),
    arg(K, T, V0),
    number(V0),
    V = V0.

track(Id, Class, First, Last, Frames) :-
    '$nsod_track'(Id, tr(_, Class, First, Last, Frames, _, _, _, _, _)).
track_speed_px(Id, V) :- '$nsod_track_value'(Id, 6, V).
track_speed_m(Id, V) :- '$nsod_track_value'(Id, 7, V).
track_heading(Id, V) :- '$nsod_track_value'(Id, 8, V).
track_displacement_px(Id, V) :- '$nsod_track_value'(Id, 9, V).
track_displacement_m(Id, V) :- '$nsod_track_value'(Id, 10, V).

track_relation(R, A, B, From, To) :-
    bb_get('$nsod_tracks', ts(_, _, Rels)),
    member(r(R, A, B, From, To), Rels).
