"""DVC stage `eval` of the example project (the same as `trainline stage eval`)."""

from engine.pipeline.eval import main
from engine.pipeline.start import run_main

if __name__ == "__main__":
    run_main(main)
