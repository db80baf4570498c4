"""DVC stage `train` of the example project (the same as `trainline stage train`)."""

from engine.pipeline.start import run_main
from engine.pipeline.train import main

if __name__ == "__main__":
    run_main(main)
