"""DVC stage `prepare` of the example project (the same as `trainline stage prepare`)."""

from engine.pipeline.prepare import main
from engine.pipeline.start import run_main

if __name__ == "__main__":
    run_main(main)
