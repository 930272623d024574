"""Installs the `pipeline`, `components` and `serving` packages and the `recsys` console script.

Exact versions live in requirements/lock.txt (a fully resolved set); install with
`pip install -r requirements/lock.txt && pip install --no-deps -e .` as the Makefile does.
"""
import setuptools

setuptools.setup(
    name="movielens-ncf-tfx",
    version="0.1.0",
    description="A TFX pipeline that trains a NeuMF recommender on MovieLens and serves it with TF Serving.",
    python_requires="==3.10.*",
    packages=setuptools.find_packages(include=["pipeline", "pipeline.*", "components", "components.*",
                                               "serving", "serving.*"]),
    package_data={"serving": ["config/*", "protos/*.proto"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "tensorflow==2.16.2",
        "keras==3.12.4",
        "tf_keras==2.16.0",
        "tensorflow-transform==1.16.0",
        "tensorflow-model-analysis==0.47.1",
        "tensorflow-data-validation==1.16.1",
        "tfx-bsl==1.16.1",
        "ml-metadata==1.16.0",
        "apache-beam[gcp]==2.60.0",
        "tensorflow-serving-api==2.16.1",
        "kfp==2.5.0",
        "protobuf==3.20.3",
        "numpy==1.26.4",
        "pyarrow==10.0.1",
        "pandas==1.5.3",
        "matplotlib",
        "grpcio-tools==1.48.2",
    ],
    # The client alone (serving.client, serving.loadtest, `recsys predict|recommend|status|metadata|loadtest`):
    # `pip install --no-deps . && pip install grpcio==1.65.5 protobuf==3.20.3 numpy==1.26.4`, the `client` extra.
    extras_require={"dev": ["pytest", "pytest-xdist"], "client": ["grpcio==1.65.5", "protobuf==3.20.3", "numpy==1.26.4"]},
    entry_points={"console_scripts": ["recsys=pipeline.cli:main"]},
)
