:- initialization(abort).
