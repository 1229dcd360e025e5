"""Seq2Seq (`seq2seq:1`): an encoder-decoder with attention (RNN or ConvS2S) on plain torch."""
