"""SageMaker BlazingText (`blazingtext:1`): Word2Vec word vectors (cbow, skipgram, subword vectors)
on gensim and fastText's text classifier (supervised) in torch, written in fastText's binary format
(and word2vec's text format), served as JSON."""
