"""Fit an MLP on scikit-learn's breast-cancer set, data-parallel, from plain NumPy arrays.

    python examples/fit_sklearn.py                 # one rank
    mpiexec -n 4 python examples/fit_sklearn.py    # four ranks, each with its own rows

Every rank loads the (small, bundled) set, standardizes it with the training rows' moments
and keeps only its own share of the rows: in a real job each rank would read just its part.
"""

import numpy as np
from mpi4py import MPI  # the ranks; hpctrain uses COMM_WORLD unless given another comm
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

import hpctrain

comm = MPI.COMM_WORLD
X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
mean, std = X_train.mean(axis=0), X_train.std(axis=0)
X_train, X_test = (X_train - mean) / std, (X_test - mean) / std

mine = slice(comm.Get_rank(), None, comm.Get_size())          # this rank's rows
model = hpctrain.fit(X_train[mine], y_train[mine], hidden=(32,), epochs=30, batch_size=16,
                     lr=3e-3, seed=0)
result = model.evaluate(X_test[mine], y_test[mine])            # summed over the ranks
if comm.Get_rank() == 0:
    print(f"ranks {comm.Get_size()}  test rows {result['rows']}  "
          f"accuracy {result['accuracy']:.3f}  loss {result['loss']:.4f}")
    labels = model.predict(X_test[:5])
    print("first five predictions:", labels.tolist(), "truth:", y_test[:5].astype(int).tolist())
    assert np.isfinite(result["loss"])
