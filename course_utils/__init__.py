"""course_utils: the small, tested package behind the dataset-distillation course notebooks.

Every notebook imports from here instead of re-defining code (README.md's table describes each module):

- data, folders, models, networks, augment, protocol,      the data (your own images too), the networks, how a set
  training                                                  is scored
- loop, checkpoint, hparams, validate, synthetic            the shared method layer
- trajectories, zca, cost                                   expert buffers, ZCA whitening, backward-pass memory
- hypergrad                                                 implicit (IFT) hypergradients: Neumann series, CG
- matching, feature_maps, ridge, ranking, nas               method-family maths, the architecture-search proxy
- repro, config, claims, experiment, results, atomic        reproducibility, profiles, claims, runs and records
- papers                                                    the papers' reported numbers, cited
- viz, progress, notebook_runner                            figures, progress bars, running the notebooks
- sweep, gather                                             batch reruns of a grid, the table over seeds
- benchmark                                                 every method under one protocol (notebook 08)
- grading, replay                                           graded assignments (nbgrader): release, autograder,
                                                            report; long cells replayed from recorded results
- methods                                                   one module per method with one interface
"""

__version__ = "0.2.0"
