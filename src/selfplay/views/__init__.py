"""Views: what a researcher reads and ships, all from files on disk. :mod:`selfplay.views.chains`
renders every chain with the verifier's marks (``selfplay inspect``), :mod:`selfplay.views.run`
and :mod:`selfplay.views.climb` a run's stage table and a climb's figures (``selfplay summary``),
:mod:`selfplay.views.html` the HTML report, :mod:`selfplay.views.verify_file` judges a file of
completions (``selfplay verify``), :mod:`selfplay.views.publish` checks a result into
``benchmarks/results/`` and :mod:`selfplay.views.export` writes the kept chains as a dataset."""
