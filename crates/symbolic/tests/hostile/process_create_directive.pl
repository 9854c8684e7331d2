:- use_module(library(process)).
