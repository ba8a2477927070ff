"""`hpctrain export CHECKPOINT --format onnx|safetensors --out FILE`: a trained model for other
tools (onnxruntime, Triton, any framework that reads safetensors). One process, no MPI."""

import click

from .predict import check_output_path

SUFFIX = {"onnx": ".onnx", "safetensors": ".safetensors"}


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--format", "fmt", required=True, type=click.Choice(tuple(SUFFIX)),
              help="onnx: the network with standardization and head (raw rows in); "
                   "safetensors: the parameters.")
@click.option("--out", required=True, type=click.Path(), help="File to write (.onnx, "
                                                               ".safetensors).")
@click.option("--single-input", is_flag=True,
              help="ONNX: one [batch, features] input 'features' even when the columns have "
                   "names (default: one [batch, 1] input per named column).")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
def export(checkpoint, fmt, out, single_input, force):
    """Export CHECKPOINT (a file, a run directory or its checkpoints/) for serving."""
    from .export_model import load_exported

    check_output_path(out, force, (SUFFIX[fmt],))
    exported = load_exported(checkpoint)
    if fmt == "onnx":
        from .export_onnx import input_names, output_name, write_onnx

        write_onnx(exported, out, single_input)
        inputs = input_names(exported, single_input)
        shown = ", ".join(inputs[:4]) + (f", ... ({len(inputs)} in all)" if len(inputs) > 4
                                         else "")
        click.echo(f"wrote {out}: inputs {shown}; output {output_name(exported.model.task)}")
    else:
        from .export_safetensors import write_safetensors

        write_safetensors(exported, out)
        click.echo(f"wrote {out}: {2 * len(exported.layers)} parameter tensors"
                   + (" and the standardization" if exported.mean is not None else ""))
