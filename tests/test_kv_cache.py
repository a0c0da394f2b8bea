"""predictor.kv_cache: the cache argument and output names of both transformers APIs (5.23: past_key_values,
5.24+: cache), and a forward through the installed version that raises no FutureWarning."""
from __future__ import annotations

import warnings

import torch

from predictor.kv_cache import cache_kwargs, layer_kv, output_cache, prefix_cache


class NewStyle(torch.nn.Module):
    def forward(self, input_ids=None, cache=None, use_cache=None):
        return input_ids


class OldStyle(torch.nn.Module):
    def forward(self, input_ids=None, past_key_values=None, use_cache=None):
        return input_ids


def test_argument_name_follows_the_forward_signature():
    assert cache_kwargs(NewStyle(), "C") == {"cache": "C"}
    assert cache_kwargs(OldStyle(), "C") == {"past_key_values": "C"}


def test_output_cache_reads_either_field():
    # ModelOutput is an OrderedDict holding only the fields that are set
    assert output_cache({"last_hidden_state": 0, "cache": "N"}) == "N"
    assert output_cache({"last_hidden_state": 0, "past_key_values": "O"}) == "O"


def test_prefix_cache_round_trip_on_the_installed_transformers_without_warnings(tiny_lm):
    base = tiny_lm.model.model
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FutureWarning (nor any other) from our cache calls
        full = base(input_ids=ids, use_cache=True)
        kv = layer_kv(output_cache(full))
        assert len(kv) == tiny_lm.model.config.num_hidden_layers and kv[0][0].shape[2] == 6
        # continue from the first 4 positions for 3 rows: the same hidden states as the full pass
        out = base(input_ids=ids[:, 4:].expand(3, -1), position_ids=torch.tensor([[4, 5]]).expand(3, -1),
                   use_cache=True, **cache_kwargs(base, prefix_cache(kv, 4, 3)))
    torch.testing.assert_close(out.last_hidden_state, full.last_hidden_state[:, 4:].expand(3, -1, -1))
