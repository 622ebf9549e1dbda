"""The `import` step: the authors' released GroundingGPT checkpoint in our checkpoint layout.

(`import` is a Python keyword, hence the package name; the step and its config section are
`import` / `release`.) `run.import_release` is the entry point; `layout.py` says where every
release tensor goes (or why it is dropped), `weights.py` reads the release safely.
"""
