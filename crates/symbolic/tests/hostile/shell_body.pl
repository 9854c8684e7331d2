% Runs a shell command when nsod asks for the pair rules.
confidence_modifier(ship, harbor, 1.2) :-
    shell('touch @DIR@/created').
