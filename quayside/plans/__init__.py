"""Plans: facts read from a host compared with a target, giving a list of typed steps or an empty
plan meaning "no change"."""
