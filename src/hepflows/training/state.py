"""Optimiser state as flat tensors, so that checkpoints stay safetensors (no pickle)."""

from __future__ import annotations


def optimizer_tensors(opt, prefix: str = "opt.") -> tuple[dict, dict]:
    """An optimiser's state as flat tensors (for safetensors) and JSON-able metadata.

    Args:
        opt: a ``torch.optim.Optimizer``.
        prefix: key prefix of the tensors.

    Returns:
        ``(tensors, meta)``; :func:`load_optimizer_tensors` reverses it.
    """
    import torch

    sd = opt.state_dict()
    tensors = {}
    for i, st in sd["state"].items():
        for k, v in st.items():
            v = torch.as_tensor(v, device=v.device if isinstance(v, torch.Tensor) else "cpu")
            tensors[f"{prefix}{i}.{k}"] = v.reshape(-1).clone() if k == "step" else v.contiguous()
    return tensors, {"param_groups": sd["param_groups"], "n_state": len(sd["state"])}


def load_optimizer_tensors(opt, tensors: dict, meta: dict, prefix: str = "opt.") -> None:
    """Restore an optimiser from :func:`optimizer_tensors` output (in place)."""
    state = {}
    for i in range(meta["n_state"]):
        head = f"{prefix}{i}."
        st = {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}
        if "step" in st:
            st["step"] = st["step"].reshape(())
        state[i] = st
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
