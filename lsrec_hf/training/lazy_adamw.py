"""AdamW that updates only the rows a sparse gradient touches: training cost independent of the catalog's size.

With a sampled softmax a step reads a few thousand rows of a million-row item-id table. A dense gradient
still zeroes, clips and AdamW-updates all of them (65M numbers at 1M items and width 64); a sparse one
(`nn.Embedding(sparse=True)`) names the rows it touches. `LazyAdamW` steps dense parameters exactly as
`torch.optim.AdamW` does and sparse ones lazily, as TensorFlow's LazyAdam and `torch.optim.SparseAdam` do: the
moments of untouched rows are left as they are, not decayed, and weight decay applies to touched rows only.
One optimizer, so the LR schedule, Accelerate and the checkpoint files see nothing new.
"""

import torch


class LazyAdamW(torch.optim.AdamW):
    """`torch.optim.AdamW` for dense gradients, a lazy row-wise AdamW for sparse ones (same state names).

    `rowwise_moments=True` keeps, for a sparse table, one second moment per row (the mean of its squared gradient)
    and no first moment: N numbers instead of 2 x N x width, the row-wise optimizers recommender systems use for
    large embedding tables (TorchRec's row-wise Adagrad; here an RMSprop step with Adam's bias correction, so the
    learning rate means the same). Dense parameters step as AdamW either way.
    """

    def __init__(self, params, rowwise_moments=False, **kwargs):
        super().__init__(params, **kwargs)
        self.rowwise_moments = rowwise_moments

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        sparse = [(p, p.grad, group) for group in self.param_groups for p in group["params"]
                  if p.grad is not None and p.grad.is_sparse]
        for p, _, _ in sparse:  # hidden from the dense step
            p.grad = None
        try:
            super().step()
        finally:
            for p, grad, _ in sparse:
                p.grad = grad
        for p, grad, group in sparse:
            self._sparse_step(p, grad.coalesce(), group)
        return loss

    def _sparse_step(self, p, grad, group):
        if self.rowwise_moments:
            return self._rowwise_step(p, grad, group)
        beta1, beta2 = group["betas"]
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        step = state["step"].item()
        rows, values = grad.indices()[0], grad.values()
        exp_avg = state["exp_avg"].index_select(0, rows).mul_(beta1).add_(values, alpha=1 - beta1)
        exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(values, values, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, exp_avg)
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
        step_size = group["lr"] / (1 - beta1 ** step)
        denominator = (exp_avg_sq / (1 - beta2 ** step)).sqrt_().add_(group["eps"])
        update = exp_avg.div_(denominator).mul_(step_size)
        if group["weight_decay"]:
            update.add_(p.index_select(0, rows), alpha=group["lr"] * group["weight_decay"])
        p.index_add_(0, rows, update, alpha=-1)


    def _rowwise_step(self, p, grad, group):
        beta2 = group["betas"][1]
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["row_exp_avg_sq"] = torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
        state["step"] += 1
        step = state["step"].item()
        rows, values = grad.indices()[0], grad.values()
        row_sq = state["row_exp_avg_sq"].index_select(0, rows).mul_(beta2).add_(values.pow(2).mean(1), alpha=1 - beta2)
        state["row_exp_avg_sq"].index_copy_(0, rows, row_sq)
        denominator = (row_sq / (1 - beta2 ** step)).sqrt_().add_(group["eps"])
        update = values / denominator[:, None] * group["lr"]
        if group["weight_decay"]:
            update.add_(p.index_select(0, rows), alpha=group["lr"] * group["weight_decay"])
        p.index_add_(0, rows, update, alpha=-1)


def clip_grad_norm(parameters, max_norm):
    """`torch.nn.utils.clip_grad_norm_` (L2) that also reads sparse gradients, which torch's cannot."""
    parameters = [p for p in parameters if p.grad is not None]
    for p in parameters:
        if p.grad.is_sparse:  # repeated rows summed once, so that the norm counts each row once
            p.grad = p.grad.coalesce()
    squares = [(p.grad.values() if p.grad.is_sparse else p.grad).float().pow(2).sum() for p in parameters]
    total = torch.stack(squares).sum().sqrt() if squares else torch.tensor(0.0)
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for p in parameters:
        if p.grad.is_sparse:
            p.grad = p.grad * scale
        else:
            p.grad.mul_(scale)
    return total
