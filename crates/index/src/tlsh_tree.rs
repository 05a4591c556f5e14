//! TLSH_TREE: an exact index for TLSH top-k and radius search.
//!
//! Digests are clustered recursively (k-medians on the bucket values plus the
//! TLSH header cost, up to 16 children per node) until a node holds at most
//! `leaf_size` digests. Every node stores bounds on its members:
//!
//! * the ranges of L, Q1 and Q2, which bound the header cost from below;
//! * a median centre and the largest L1 (bucket |Δ|) distance from it to a
//!   member: L1 is a metric, so `L1(q, centre) − radius` bounds every
//!   member's L1 from below, and TLSH's body cost is at least the L1;
//! * the per-bucket minimum and maximum value (a box), whose exact TLSH cost
//!   from the query bounds the body cost from below.
//!
//! The search visits nodes best-first by lower bound and stops when the bound
//! exceeds the current k-th distance (or the cutoff); pruning is only ever by
//! valid lower bounds and ties at the threshold are kept (`>`), so the answer
//! equals brute force — the tests check this against exhaustive scans.

use apksift_tlsh::{DIGEST_LEN, l_cost, q_cost};
use bytemuck::{Pod, Zeroable};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::tlsh_kernel::{TlshQuery, body_l1, record_body_words};

/// Bytes per node on disk.
pub const NODE_BYTES: usize = 128;
const BRANCHING: usize = 16;
const TRAIN_SAMPLE: usize = 4096;
const ITERATIONS: usize = 4;

/// One node (little-endian, 128 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq)]
pub struct Node {
    /// Median centre as a record (checksum byte unused).
    pub center: [u8; DIGEST_LEN],
    /// Smallest L-value.
    pub lmin: u8,
    /// Largest L-value.
    pub lmax: u8,
    /// Smallest Q1.
    pub q1min: u8,
    /// Largest Q1.
    pub q1max: u8,
    /// Smallest Q2.
    pub q2min: u8,
    /// Largest Q2.
    pub q2max: u8,
    pad0: [u8; 1],
    /// Largest body L1 distance from the centre to a member.
    pub radius: u16,
    /// Number of children (0 for a leaf).
    pub nchild: u16,
    /// Largest number of buckets in which a member differs from the centre.
    pub rlanes: u16,
    /// Index of the first child (children are consecutive).
    pub first_child: u32,
    /// First position (leaf order) covered.
    pub start: u32,
    /// One past the last position covered.
    pub end: u32,
    pad1: [u8; 4],
    /// Value sets: for v in 0..4, 128 bits (two u64 LE) where bit k says some
    /// member has value v in bucket k.
    pub planes: [u8; 64],
}

const _: () = assert!(std::mem::size_of::<Node>() == NODE_BYTES);

#[allow(dead_code)]
fn words32(b: &[u8; 32]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (i, c) in b.chunks_exact(8).enumerate() {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        if let Some(x) = w.get_mut(i) {
            *x = u64::from_le_bytes(a);
        }
    }
    w
}

fn bytes32(w: &[u64; 4]) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, x) in w.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes());
    }
    b
}

impl Node {
    /// Lower bound of the TLSH distance from `q` to any member.
    #[inline]
    pub fn lower_bound(&self, q: &TlshQuery) -> u32 {
        let (h, ball, set) = self.bound_parts(q);
        h + ball.max(set)
    }

    /// The parts of [`Node::lower_bound`]: (header, ball, value-set) bounds.
    ///
    /// * header: the cheapest L, Q1, Q2 costs within the node's ranges;
    /// * ball: `L1(q, centre) − radius` bounds every member's L1, and a member
    ///   differs from the centre in at most `rlanes` buckets, so at least
    ///   `m3 − rlanes` of the buckets where query and centre are 3 apart are
    ///   still 3 apart in the member (TLSH charges 6 there, L1 counts 3);
    /// * value-set: per bucket, the cheapest TLSH cost to any value a member has.
    #[inline]
    pub fn bound_parts(&self, q: &TlshQuery) -> (u32, u32, u32) {
        let h = q.header_lower_bound(
            (self.lmin, self.lmax),
            (self.q1min, self.q1max),
            (self.q2min, self.q2max),
        );
        let c = record_body_words(&self.center);
        let (l1, m3) = q.body_l1_and_far(&c);
        let ball = l1.saturating_sub(u32::from(self.radius))
            + 3 * m3.saturating_sub(u32::from(self.rlanes));
        let set = q.value_set_lower_bound(&self.planes);
        (h, ball, set)
    }

    /// Body part of the bound only (ball, then value-set when the ball is not enough).
    #[inline]
    pub fn body_lower_bound(&self, q: &TlshQuery, need: u32) -> u32 {
        let c = record_body_words(&self.center);
        let (l1, m3) = q.body_l1_and_far(&c);
        let ball = l1.saturating_sub(u32::from(self.radius))
            + 3 * m3.saturating_sub(u32::from(self.rlanes));
        if ball > need {
            return ball;
        }
        ball.max(q.value_set_lower_bound(&self.planes))
    }

    /// Header part of the bound.
    #[inline]
    pub fn header_lower_bound(&self, q: &TlshQuery) -> u32 {
        q.header_lower_bound(
            (self.lmin, self.lmax),
            (self.q1min, self.q1max),
            (self.q2min, self.q2max),
        )
    }

    /// True for a leaf.
    pub fn is_leaf(&self) -> bool {
        self.nchild == 0
    }
}

/// A built tree: the leaf order of the rows and the nodes (root first).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// Row ids in leaf order.
    pub order: Vec<u32>,
    /// Nodes, breadth-first; children of a node are consecutive.
    pub nodes: Vec<Node>,
}

#[inline]
fn lane(w: &[u64; 4], k: usize) -> u8 {
    ((w[k / 32] >> (2 * (k % 32))) & 3) as u8
}

#[derive(Clone, Copy)]
struct Center {
    body: [u64; 4],
    l: u8,
    q1: u8,
    q2: u8,
}

#[inline]
fn rec(records: &[u8], row: u32) -> &[u8] {
    let at = row as usize * DIGEST_LEN;
    records
        .get(at..at + DIGEST_LEN)
        .unwrap_or(&[0u8; DIGEST_LEN])
}

#[inline]
fn hdr(r: &[u8]) -> (u8, u8, u8) {
    match r {
        [_, l, q, ..] => (l.rotate_left(4), q >> 4, q & 15),
        _ => (0, 0, 0),
    }
}

#[inline]
fn cdist(c: &Center, r: &[u8]) -> u32 {
    let (l, q1, q2) = hdr(r);
    body_l1(&c.body, &record_body_words(r)) + l_cost(c.l, l) + q_cost(c.q1, q1) + q_cost(c.q2, q2)
}

fn median_center(records: &[u8], rows: &[u32]) -> Center {
    let mut counts = [[0u32; 4]; 128];
    let mut lh = [0u32; 256];
    let mut q1h = [0u32; 16];
    let mut q2h = [0u32; 16];
    for &r in rows {
        let x = rec(records, r);
        let w = record_body_words(x);
        for (k, c) in counts.iter_mut().enumerate() {
            c[lane(&w, k) as usize] += 1;
        }
        let (l, q1, q2) = hdr(x);
        lh[l as usize] += 1;
        q1h[q1 as usize] += 1;
        q2h[q2 as usize] += 1;
    }
    let half = (rows.len() as u32).div_ceil(2);
    let med = |h: &[u32]| -> u8 {
        let mut acc = 0;
        for (v, c) in h.iter().enumerate() {
            acc += c;
            if acc >= half {
                return v as u8;
            }
        }
        0
    };
    let mut body = [0u64; 4];
    for (k, c) in counts.iter().enumerate() {
        body[k / 32] |= u64::from(med(c)) << (2 * (k % 32));
    }
    Center {
        body,
        l: med(&lh),
        q1: med(&q1h),
        q2: med(&q2h),
    }
}

fn node_stats(records: &[u8], rows: &[u32]) -> Node {
    let c = median_center(records, rows);
    let mut n = Node::zeroed();
    let mut center = [0u8; DIGEST_LEN];
    center[1] = c.l.rotate_left(4);
    center[2] = (c.q1 << 4) | c.q2;
    center[3..].copy_from_slice(&bytes32(&c.body));
    n.center = center;
    let (mut lmin, mut lmax, mut q1min, mut q1max, mut q2min, mut q2max) =
        (255u8, 0u8, 15u8, 0u8, 15u8, 0u8);
    let mut planes = [[0u64; 2]; 4];
    let mut radius = 0u32;
    let mut rlanes = 0u32;
    for &r in rows {
        let x = rec(records, r);
        let (l, q1, q2) = hdr(x);
        lmin = lmin.min(l);
        lmax = lmax.max(l);
        q1min = q1min.min(q1);
        q1max = q1max.max(q1);
        q2min = q2min.min(q2);
        q2max = q2max.max(q2);
        let w = record_body_words(x);
        radius = radius.max(body_l1(&c.body, &w));
        let p = value_planes(&w);
        for v in 0..4 {
            planes[v][0] |= p[v][0];
            planes[v][1] |= p[v][1];
        }
        rlanes = rlanes.max(lanes_differing(&c.body, &w));
    }
    if rows.is_empty() {
        (lmin, q1min, q2min) = (0, 0, 0);
    }
    n.lmin = lmin;
    n.lmax = lmax;
    n.q1min = q1min;
    n.q1max = q1max;
    n.q2min = q2min;
    n.q2max = q2max;
    n.radius = radius.min(u32::from(u16::MAX)) as u16;
    n.rlanes = rlanes.min(u32::from(u16::MAX)) as u16;
    for (v, pl) in planes.iter().enumerate() {
        n.planes[v * 16..v * 16 + 8].copy_from_slice(&pl[0].to_le_bytes());
        n.planes[v * 16 + 8..v * 16 + 16].copy_from_slice(&pl[1].to_le_bytes());
    }
    n
}

/// One-hot planes of a body: `planes[v]` has bit k set when bucket k has value v.
pub fn value_planes(w: &[u64; 4]) -> [[u64; 2]; 4] {
    let mut out = [[0u64; 2]; 4];
    for (i, word) in w.iter().enumerate() {
        // Compress the 32 lanes of this word into 32 bits per value.
        let lo = word & 0x5555_5555_5555_5555;
        let hi = (word >> 1) & 0x5555_5555_5555_5555;
        let sel = [!hi & !lo, !hi & lo, hi & !lo, hi & lo];
        for (v, m) in sel.iter().enumerate() {
            let bits = compress_even(m & 0x5555_5555_5555_5555);
            out[v][i / 2] |= bits << (32 * (i % 2));
        }
    }
    out
}

/// Gathers the even bits of `x` into the low 32 bits.
#[inline]
fn compress_even(mut x: u64) -> u64 {
    x &= 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x >> 4)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x >> 8)) & 0x0000_ffff_0000_ffff;
    x = (x | (x >> 16)) & 0x0000_0000_ffff_ffff;
    x
}

fn lanes_differing(a: &[u64; 4], b: &[u64; 4]) -> u32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = x ^ y;
            ((d | (d >> 1)) & 0x5555_5555_5555_5555).count_ones()
        })
        .sum()
}

struct Tmp {
    node: Node,
    children: Vec<Tmp>,
}

/// Builds a tree over `rows` (ids into `records`, 35 bytes per row).
pub fn build(records: &[u8], mut rows: Vec<u32>, leaf_size: usize, seed: u64) -> Tree {
    let leaf_size = leaf_size.max(2);
    let n = rows.len();
    let root = build_header_level(records, &mut rows, 0, 0, leaf_size, seed);
    // Flatten breadth-first.
    let mut nodes = Vec::with_capacity(2 * n / leaf_size + 1);
    let mut queue = std::collections::VecDeque::new();
    nodes.push(root.node);
    queue.push_back((0usize, root));
    while let Some((idx, t)) = queue.pop_front() {
        let first = nodes.len();
        if let Some(nd) = nodes.get_mut(idx) {
            nd.first_child = first as u32;
            nd.nchild = t.children.len() as u16;
        }
        for c in t.children {
            nodes.push(c.node);
            queue.push_back((nodes.len() - 1, c));
        }
    }
    Tree { order: rows, nodes }
}

/// The top two levels split by exact header values: level 0 by L-value,
/// level 1 by the Q byte (Q1, Q2). Their header bounds are then exact, which
/// is what prunes most: an L-value 2 apart already costs 24.
fn build_header_level(
    records: &[u8],
    rows: &mut [u32],
    start: usize,
    level: u8,
    leaf: usize,
    seed: u64,
) -> Tmp {
    if level >= 2 {
        return build_rec(records, rows, start, leaf, seed);
    }
    let mut node = node_stats(records, rows);
    node.start = start as u32;
    node.end = (start + rows.len()) as u32;
    let key = |r: u32| -> u8 {
        let x = rec(records, r);
        match level {
            0 => hdr(x).0,
            _ => x.get(2).copied().unwrap_or(0),
        }
    };
    rows.sort_by_key(|&r| key(r));
    let mut parts: Vec<(usize, &mut [u32])> = Vec::new();
    let mut rest = rows;
    let mut at = start;
    while !rest.is_empty() {
        let k0 = key(rest[0]);
        let len = rest.iter().take_while(|&&r| key(r) == k0).count();
        let (head, tail) = rest.split_at_mut(len);
        parts.push((at, head));
        at += len;
        rest = tail;
    }
    let children: Vec<Tmp> = parts
        .into_par_iter()
        .enumerate()
        .map(|(i, (st, p))| {
            build_header_level(
                records,
                p,
                st,
                level + 1,
                leaf,
                seed.wrapping_mul(131).wrapping_add(i as u64 + 1),
            )
        })
        .collect();
    Tmp { node, children }
}

fn build_rec(records: &[u8], rows: &mut [u32], start: usize, leaf: usize, seed: u64) -> Tmp {
    let mut node = node_stats(records, rows);
    node.start = start as u32;
    node.end = (start + rows.len()) as u32;
    if rows.len() <= leaf {
        return Tmp {
            node,
            children: Vec::new(),
        };
    }
    let b = BRANCHING.min(rows.len().div_ceil(leaf)).max(2);
    let assign = partition(records, rows, b, seed);
    // Group rows by cluster (stable counting sort).
    let mut counts = vec![0usize; b];
    for &a in &assign {
        counts[a as usize] += 1;
    }
    // Degenerate (identical digests) or very unbalanced partitions (dense
    // near-duplicates): split evenly in digest order instead, which keeps the
    // depth logarithmic.
    let largest = counts.iter().copied().max().unwrap_or(0);
    let sizes: Vec<usize> = if largest * 10 > rows.len() * 9 {
        rows.sort_unstable_by_key(|&r| (hdr(rec(records, r)).0, rec(records, r).to_vec()));
        let per = rows.len().div_ceil(b);
        (0..b)
            .map(|i| per.min(rows.len().saturating_sub(i * per)))
            .filter(|&s| s > 0)
            .collect()
    } else {
        let mut offs = vec![0usize; b + 1];
        for i in 0..b {
            offs[i + 1] = offs[i] + counts[i];
        }
        let mut sorted = vec![0u32; rows.len()];
        let mut fill = offs.clone();
        for (&r, &a) in rows.iter().zip(&assign) {
            sorted[fill[a as usize]] = r;
            fill[a as usize] += 1;
        }
        rows.copy_from_slice(&sorted);
        counts.into_iter().filter(|&c| c > 0).collect()
    };
    let mut parts: Vec<(usize, &mut [u32])> = Vec::with_capacity(sizes.len());
    let mut rest = rows;
    let mut at = start;
    for s in sizes {
        let (head, tail) = rest.split_at_mut(s);
        parts.push((at, head));
        at += s;
        rest = tail;
    }
    let child = |(i, (st, p)): (usize, (usize, &mut [u32]))| {
        build_rec(
            records,
            p,
            st,
            leaf,
            seed.wrapping_mul(31).wrapping_add(i as u64 + 1),
        )
    };
    // Subtrees are independent: build big ones in parallel.
    let children: Vec<Tmp> = if node.end - node.start > 20_000 {
        parts.into_par_iter().enumerate().map(child).collect()
    } else {
        parts.into_iter().enumerate().map(child).collect()
    };
    Tmp { node, children }
}

/// k-medians with k-means++ seeding on a sample; returns the cluster of every row.
fn partition(records: &[u8], rows: &[u32], k: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ rows.len() as u64);
    let sample: Vec<u32> = if rows.len() > TRAIN_SAMPLE {
        (0..TRAIN_SAMPLE)
            .map(|_| rows[rng.random_range(0..rows.len())])
            .collect()
    } else {
        rows.to_vec()
    };
    let to_center = |r: u32| {
        let x = rec(records, r);
        let (l, q1, q2) = hdr(x);
        Center {
            body: record_body_words(x),
            l,
            q1,
            q2,
        }
    };
    // k-means++ seeding.
    let mut centers = vec![to_center(sample[rng.random_range(0..sample.len())])];
    let mut dmin: Vec<u32> = sample
        .iter()
        .map(|&r| cdist(&centers[0], rec(records, r)))
        .collect();
    while centers.len() < k {
        let total: f64 = dmin.iter().map(|&d| f64::from(d) * f64::from(d)).sum();
        if total <= 0.0 {
            break;
        }
        let mut t = rng.random::<f64>() * total;
        let mut pick = sample.len() - 1;
        for (i, &d) in dmin.iter().enumerate() {
            t -= f64::from(d) * f64::from(d);
            if t <= 0.0 {
                pick = i;
                break;
            }
        }
        let c = to_center(sample[pick]);
        for (i, &r) in sample.iter().enumerate() {
            dmin[i] = dmin[i].min(cdist(&c, rec(records, r)));
        }
        centers.push(c);
    }
    let nearest = |centers: &[Center], r: u32| -> u8 {
        let x = rec(records, r);
        let mut best = (u32::MAX, 0u8);
        for (i, c) in centers.iter().enumerate() {
            let d = cdist(c, x);
            if d < best.0 {
                best = (d, i as u8);
            }
        }
        best.1
    };
    for _ in 0..ITERATIONS {
        let a: Vec<u8> = sample.iter().map(|&r| nearest(&centers, r)).collect();
        for (ci, c) in centers.iter_mut().enumerate() {
            let members: Vec<u32> = sample
                .iter()
                .zip(&a)
                .filter(|(_, x)| **x as usize == ci)
                .map(|(r, _)| *r)
                .collect();
            if !members.is_empty() {
                *c = median_center(records, &members);
            }
        }
    }
    if rows.len() > 50_000 {
        rows.par_iter().map(|&r| nearest(&centers, r)).collect()
    } else {
        rows.iter().map(|&r| nearest(&centers, r)).collect()
    }
}

/// Receives candidates during a search and decides the threshold.
pub trait TlshSink {
    /// Largest distance still of interest (inclusive).
    fn bound(&self) -> u32;
    /// A row at `dist <= bound()`.
    fn offer(&mut self, pos: u32, dist: u32);
}

/// Counters of one search, for benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchStats {
    /// Nodes whose bound was computed.
    pub nodes: u64,
    /// Leaves scanned.
    pub leaves: u64,
    /// Digests compared exactly.
    pub rows: u64,
}

/// Searches a tree. `records` holds the digests in leaf order (35 bytes per
/// position); the sink receives positions.
///
/// The first two levels under the root are visited breadth-first and their
/// header bounds collected; the nodes below them (one per exact L-value and
/// Q byte when built by [`build`]) are then searched in increasing order of
/// header bound, depth-first with body bounds, so the closest header group
/// tightens the threshold before the others are looked at. Every pruning
/// step compares a valid lower bound with the current threshold using `>`,
/// whatever the shape of the tree.
pub fn search(
    nodes: &[Node],
    records: &[u8],
    q: &TlshQuery,
    sink: &mut dyn TlshSink,
    stats: &mut SearchStats,
) {
    let Some(root) = nodes.first() else { return };
    stats.nodes += 1;
    if root.header_lower_bound(q) > sink.bound() {
        return;
    }
    // Collect header groups (depth 2) with their header bounds.
    let mut groups: Vec<(u32, u32)> = Vec::new();
    let mut frontier: Vec<u32> = vec![0];
    for _depth in 0..2 {
        let mut next = Vec::new();
        for &i in &frontier {
            let Some(n) = nodes.get(i as usize) else {
                continue;
            };
            if n.is_leaf() {
                groups.push((n.header_lower_bound(q), i));
                continue;
            }
            let f = n.first_child as usize;
            for ci in f..f + n.nchild as usize {
                if let Some(c) = nodes.get(ci) {
                    stats.nodes += 1;
                    if c.header_lower_bound(q) <= sink.bound() {
                        next.push(ci as u32);
                    }
                }
            }
        }
        frontier = next;
    }
    for &i in &frontier {
        if let Some(n) = nodes.get(i as usize) {
            groups.push((n.header_lower_bound(q), i));
        }
    }
    groups.sort_unstable();
    for (h, gi) in groups {
        let bound = sink.bound();
        if h > bound {
            break;
        }
        let Some(g) = nodes.get(gi as usize) else {
            continue;
        };
        stats.nodes += 1;
        if h + g.body_lower_bound(q, bound - h) > bound {
            continue;
        }
        visit(nodes, records, q, sink, stats, gi, h);
    }
}

/// Exact distances of positions `s..e`.
#[inline]
fn scan_range(
    records: &[u8],
    q: &TlshQuery,
    sink: &mut dyn TlshSink,
    stats: &mut SearchStats,
    s: usize,
    e: usize,
) {
    stats.rows += e.saturating_sub(s) as u64;
    if let Some(block) = records.get(s * DIGEST_LEN..e * DIGEST_LEN) {
        q.scan(block, s, sink);
    }
}

/// Depth-first search of the subtree under `root` (whose header bound is
/// `h`), children in increasing order of bound. An explicit stack, so any
/// depth works; a child index must be larger than its parent's (breadth-first
/// layout, checked when a segment is opened), which also rules out cycles.
fn visit(
    nodes: &[Node],
    records: &[u8],
    q: &TlshQuery,
    sink: &mut dyn TlshSink,
    stats: &mut SearchStats,
    root: u32,
    h: u32,
) {
    let mut stack: Vec<(u32, u32)> = vec![(h, root)];
    let mut kids: Vec<(u32, u32)> = Vec::with_capacity(16);
    while let Some((lb, idx)) = stack.pop() {
        if lb > sink.bound() {
            continue;
        }
        let Some(node) = nodes.get(idx as usize) else {
            continue;
        };
        if node.is_leaf() {
            stats.leaves += 1;
            scan_range(
                records,
                q,
                sink,
                stats,
                node.start as usize,
                node.end as usize,
            );
            continue;
        }
        let f = node.first_child as usize;
        if f <= idx as usize {
            continue;
        }
        let bound = sink.bound();
        let need = bound.saturating_sub(h);
        kids.clear();
        for ci in f..f + node.nchild as usize {
            let Some(c) = nodes.get(ci) else { continue };
            stats.nodes += 1;
            let lb = h + c.body_lower_bound(q, need);
            if lb <= bound {
                kids.push((lb, ci as u32));
            }
        }
        // Largest bound first on the stack, so the smallest is visited next.
        kids.sort_unstable_by(|a, b| b.cmp(a));
        stack.extend_from_slice(&kids);
    }
}

/// Checks the shape of a stored tree: children after their parent, inside
/// the node array, covering sub-ranges of their parent's positions.
pub fn check_shape(nodes: &[Node], positions: usize) -> Result<(), String> {
    for (i, n) in nodes.iter().enumerate() {
        if n.start > n.end || n.end as usize > positions {
            return Err(format!(
                "node {i}: range {}..{} outside 0..{positions}",
                n.start, n.end
            ));
        }
        if n.nchild > 0 {
            let f = n.first_child as usize;
            let e = f + n.nchild as usize;
            if f <= i || e > nodes.len() {
                return Err(format!(
                    "node {i}: children {f}..{e} not after it or outside the tree"
                ));
            }
            for c in nodes.get(f..e).unwrap_or(&[]) {
                if c.start < n.start || c.end > n.end {
                    return Err(format!(
                        "node {i}: a child covers positions outside its own"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use apksift_tlsh::Digest;

    struct All {
        bound: u32,
        hits: Vec<(u32, u32)>,
    }
    impl TlshSink for All {
        fn bound(&self) -> u32 {
            self.bound
        }
        fn offer(&mut self, pos: u32, dist: u32) {
            self.hits.push((dist, pos));
        }
    }

    /// Families of mutated digests, like the benchmark generator.
    pub(crate) fn family_records(n: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n * DIGEST_LEN);
        let mut root = [0u8; DIGEST_LEN];
        for i in 0..n {
            if i % 10 == 0 {
                rng.fill(&mut root[..]);
                root[1] = (rng.random_range(20u8..120)).rotate_left(4);
            }
            let mut x = root;
            for _ in 0..rng.random_range(0..12) {
                let j = rng.random_range(3..DIGEST_LEN);
                x[j] ^= 1 << rng.random_range(0..8);
            }
            if rng.random_bool(0.3) {
                x[1] = (x[1].rotate_left(4).wrapping_add(1)).rotate_left(4);
            }
            x[0] = rng.random();
            out.extend_from_slice(&x);
        }
        out
    }

    #[test]
    fn tree_radius_search_equals_brute_force() {
        let n = 3000;
        let recs = family_records(n, 7);
        let tree = build(&recs, (0..n as u32).collect(), 16, 1);
        assert_eq!(tree.order.len(), n);
        let mut sorted = tree.order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n as u32).collect::<Vec<_>>());
        let ordered: Vec<u8> = tree
            .order
            .iter()
            .flat_map(|&r| rec(&recs, r).to_vec())
            .collect();
        for n0 in &tree.nodes {
            assert!(n0.start <= n0.end);
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for qi in 0..200 {
            let qrec = if qi % 2 == 0 {
                let mut x = [0u8; DIGEST_LEN];
                x.copy_from_slice(rec(&recs, rng.random_range(0..n as u32)));
                x[5] ^= 3;
                x
            } else {
                let mut x = [0u8; DIGEST_LEN];
                rng.fill(&mut x[..]);
                x
            };
            let qd = Digest::from_bytes(qrec);
            for len in [true, false] {
                let q = TlshQuery::new(qd, len);
                for radius in [0u32, 10, 30, 100, 300] {
                    let mut sink = All {
                        bound: radius,
                        hits: Vec::new(),
                    };
                    let mut st = SearchStats::default();
                    search(&tree.nodes, &ordered, &q, &mut sink, &mut st);
                    let mut got: Vec<(u32, u32)> = sink
                        .hits
                        .iter()
                        .map(|&(d, p)| (d, tree.order[p as usize]))
                        .collect();
                    got.sort_unstable();
                    let mut want: Vec<(u32, u32)> = (0..n as u32)
                        .filter_map(|r| {
                            let d = qd.distance(
                                &Digest::from_bytes(rec(&recs, r).try_into().unwrap()),
                                len,
                            );
                            (d <= radius).then_some((d, r))
                        })
                        .collect();
                    want.sort_unstable();
                    assert_eq!(got, want, "query {qi} radius {radius} len {len}");
                }
            }
        }
    }

    #[test]
    fn tree_dense_near_duplicates_are_all_found() {
        // Thousands of digests one bit apart (like the /usr near-duplicate clusters)
        // plus unrelated ones: the partitions are very unbalanced; every row within
        // the radius must still be found, at any tree depth.
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let mut base = [0u8; DIGEST_LEN];
        rng.fill(&mut base[..]);
        let mut recs = Vec::new();
        for i in 0..6000usize {
            let mut x = base;
            if i % 3 != 0 {
                x[3 + (i % 32)] ^= 1 << (i % 8);
            }
            if i % 5 == 0 {
                rng.fill(&mut x[..]);
            }
            x[0] = (i % 7) as u8;
            recs.extend_from_slice(&x);
        }
        let n = recs.len() / DIGEST_LEN;
        for seed in 0..4 {
            let tree = build(&recs, (0..n as u32).collect(), 8, seed);
            check_shape(&tree.nodes, n).unwrap();
            let ordered: Vec<u8> = tree
                .order
                .iter()
                .flat_map(|&r| rec(&recs, r).to_vec())
                .collect();
            let q = TlshQuery::new(Digest::from_bytes(base), true);
            for radius in [0u32, 2, 10, 40] {
                let mut sink = All {
                    bound: radius,
                    hits: Vec::new(),
                };
                search(
                    &tree.nodes,
                    &ordered,
                    &q,
                    &mut sink,
                    &mut SearchStats::default(),
                );
                let want = (0..n as u32)
                    .filter(|&r| q.distance(rec(&recs, r)) <= radius)
                    .count();
                assert_eq!(sink.hits.len(), want, "seed {seed} radius {radius}");
            }
        }
    }

    #[test]
    fn tree_search_has_no_depth_limit() {
        // Regression: a depth guard used to cut subtrees deeper than 64 levels,
        // which silently dropped true neighbours in dense near-duplicate
        // clusters (found by the benchmark's check against brute force).
        let depth = 300usize;
        let rec_bytes: Vec<u8> = (0..depth + 1)
            .flat_map(|i| {
                let mut x = [0x55u8; DIGEST_LEN];
                x[0] = i as u8;
                x
            })
            .collect();
        let n = depth + 1;
        let stats = node_stats(&rec_bytes, &(0..n as u32).collect::<Vec<_>>());
        // A chain: node covering i..n has children [leaf i, node covering i+1..n].
        let mut root = stats;
        root.start = 0;
        root.end = n as u32;
        let mut arranged = vec![root];
        let mut slot = 0usize;
        for i in 0..depth {
            let first = arranged.len();
            arranged[slot].first_child = first as u32;
            arranged[slot].nchild = 2;
            let mut leaf = stats;
            (leaf.start, leaf.end, leaf.nchild) = (i as u32, i as u32 + 1, 0);
            let mut next = stats;
            (next.start, next.end, next.nchild) = (i as u32 + 1, n as u32, 0);
            arranged.push(leaf);
            arranged.push(next);
            slot = first + 1;
        }
        check_shape(&arranged, n).unwrap();
        let q = TlshQuery::new(Digest::from_bytes([0x55u8; DIGEST_LEN]), true);
        let mut sink = All {
            bound: 1,
            hits: Vec::new(),
        };
        visit(
            &arranged,
            &rec_bytes,
            &q,
            &mut sink,
            &mut SearchStats::default(),
            0,
            0,
        );
        assert_eq!(
            sink.hits.len(),
            n,
            "every row of a {depth}-deep chain must be found"
        );
    }

    #[test]
    fn tree_handles_identical_and_tiny_inputs() {
        let recs: Vec<u8> = std::iter::repeat_n([0x11u8; DIGEST_LEN], 500)
            .flatten()
            .collect();
        let tree = build(&recs, (0..500).collect(), 8, 1);
        assert_eq!(tree.order.len(), 500);
        assert!(
            tree.nodes
                .iter()
                .filter(|n| n.is_leaf())
                .all(|n| n.end - n.start <= 8)
        );
        let empty = build(&recs, Vec::new(), 8, 1);
        assert_eq!(empty.nodes.len(), 1);
        assert!(empty.order.is_empty());
    }
}
