//! Embedding lookup: rows of a `[vocab, dim]` table gathered by id; backward scatter-adds.

/// `out[i, :] = table[ids[i], :]`.
pub fn embedding<T: Copy>(table: &[T], dim: usize, ids: &[u32], out: &mut [T]) {
    let vocab = table.len() / dim.max(1);
    assert_eq!(out.len(), ids.len() * dim, "embedding: output size");
    for (o, &id) in out.chunks_mut(dim.max(1)).zip(ids) {
        let id = id as usize;
        assert!(
            id < vocab,
            "embedding: id {id} out of range for {vocab} rows"
        );
        o.copy_from_slice(&table[id * dim..(id + 1) * dim]);
    }
}

/// `dtable[ids[i], :] += g[i, :]` (dtable is not cleared first).
pub fn embedding_backward<T: Copy + std::ops::AddAssign>(
    g: &[T],
    dim: usize,
    ids: &[u32],
    dtable: &mut [T],
) {
    for (gr, &id) in g.chunks(dim.max(1)).zip(ids) {
        let row = &mut dtable[id as usize * dim..(id as usize + 1) * dim];
        for (d, &v) in row.iter_mut().zip(gr) {
            *d += v;
        }
    }
}
