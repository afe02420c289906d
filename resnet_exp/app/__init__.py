"""Running under Hydra: one-line errors (`cli`), `resume=`/`eval` argument expansion (`resume`), Hydra callbacks."""
