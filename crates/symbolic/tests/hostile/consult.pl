:- consult('@DIR@/other.pl').
