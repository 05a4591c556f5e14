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
    /// [`NodeBounds`] of every node, same order.
    pub bounds: Vec<NodeBounds>,
}

/// What a node's lower bound needs, 48 bytes (little-endian): the centre
/// record, the header ranges, the radius and `rlanes` of its [`Node`]
/// (value sets are read from the node itself, only when the ball bound is
/// not enough).
///
/// The search computes the bounds of all children of a node it expands.
/// Reading them from this dense array instead of the 128-byte nodes moves
/// 48 instead of 128 bytes per child (the second half of a node's 128 bytes
/// comes along with the first through the CPU's adjacent-line prefetch):
/// 1.3-1.45x lower p99 for top-10 at 10M digests, where evaluating children
/// is bound by memory traffic (measured with `apksift-bench tree`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq)]
pub struct NodeBounds {
    /// The node's centre record (as [`Node::center`]).
    pub center: [u8; DIGEST_LEN],
    /// `lmin, lmax, q1min, q1max, q2min, q2max`.
    pub ranges: [u8; 6],
    pad: [u8; 3],
    /// As [`Node::radius`].
    pub radius: u16,
    /// As [`Node::rlanes`].
    pub rlanes: u16,
}

/// Bytes per [`NodeBounds`].
pub const NODE_BOUNDS_BYTES: usize = 48;
const _: () = assert!(std::mem::size_of::<NodeBounds>() == NODE_BOUNDS_BYTES);

impl NodeBounds {
    /// The bounds part of `n`.
    pub fn of(n: &Node) -> NodeBounds {
        NodeBounds {
            center: n.center,
            ranges: [n.lmin, n.lmax, n.q1min, n.q1max, n.q2min, n.q2max],
            pad: [0; 3],
            radius: n.radius,
            rlanes: n.rlanes,
        }
    }
}

/// The [`NodeBounds`] of every node.
pub fn node_bounds(nodes: &[Node]) -> Vec<NodeBounds> {
    nodes.iter().map(NodeBounds::of).collect()
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

/// Components of at least this many digests get a node of their own in the
/// family part of the tree; smaller ones go to the header part.
const MIN_COMPONENT: usize = 4;
/// Hash tables of the component search, buckets compared per table, sorted
/// neighbours compared per digest, and the body L1 that links two digests.
const LSH_TABLES: usize = 20;
const LSH_BUCKETS: usize = 8;
const LSH_WINDOW: usize = 4;
const LINK_L1: u32 = 48;
/// Most children of one node in the family part (more are grouped).
const MAX_FANOUT: usize = 4096;
/// Cache lines prefetched for a queued node (its first children or digests).
const PREFETCH_LINES: usize = 4;

/// Builds a tree over `rows` (ids into `records`, 35 bytes per row).
///
/// Near-identical digests (a family of variants of one file) are first
/// grouped into components ([`find_components`]): a component is a tight
/// ball in body space, so its ball bound prunes it whole for a query that is
/// not one of its variants, whatever the query's header. The tree has two
/// parts under the root:
///
/// * the family part: components of at least [`MIN_COMPONENT`] digests,
///   grouped by their L-value range (one node per range; its children are
///   the components, ordered by Q1 range, then Q2 range, and grouped under
///   intermediate nodes beyond [`MAX_FANOUT`]); a component larger than a
///   leaf is split like the header part below. A node per Q1 or Q2 range
///   was measured slower at 10M digests: most such groups hold one or two
///   components, so a query paid a random memory access per group, where
///   the components of an L range are read as one contiguous run (the
///   child bounds are computed from [`NodeBounds`], 48 bytes a node);
/// * the header part: the other digests, split by exact L-value, then exact Q
///   byte (exact header bounds: an L-value 2 apart already costs 24), then by
///   k-medians on the body down to leaves.
///
/// How digests are grouped only affects speed: every node stores bounds of
/// its own members, so search stays exact for any grouping.
pub fn build(records: &[u8], mut rows: Vec<u32>, leaf_size: usize, seed: u64) -> Tree {
    let leaf_size = leaf_size.max(2);
    let n = rows.len();
    let comp = find_components(records, &rows, seed);
    let mut size = vec![0u32; n];
    for &r in &rows {
        if let Some(&c) = comp.get(r as usize)
            && let Some(s) = size.get_mut(c as usize)
        {
            *s += 1;
        }
    }
    let in_family = |r: u32| -> bool {
        comp.get(r as usize)
            .and_then(|&c| size.get(c as usize))
            .is_some_and(|&s| s as usize >= MIN_COMPONENT)
    };
    // Family part first (stable, so the header part keeps its input order).
    rows.sort_by_key(|&r| !in_family(r));
    let nfam = rows.iter().take_while(|&&r| in_family(r)).count();
    let root = if nfam == 0 || nfam == n {
        if nfam == 0 {
            build_header_level(records, &mut rows, 0, 0, leaf_size, seed)
        } else {
            build_components(records, &mut rows, &comp, 0, leaf_size, seed)
        }
    } else {
        let mut node = node_stats(records, &rows);
        node.start = 0;
        node.end = n as u32;
        let (fam, rest) = rows.split_at_mut(nfam);
        let (a, b) = rayon::join(
            || build_components(records, fam, &comp, 0, leaf_size, seed),
            || build_header_level(records, rest, nfam, 0, leaf_size, seed ^ 0x9e37),
        );
        Tmp {
            node,
            children: vec![a, b],
        }
    };
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
    let bounds = node_bounds(&nodes);
    Tree {
        order: rows,
        nodes,
        bounds,
    }
}

fn uf_find(p: &mut [u32], mut x: u32) -> u32 {
    while let Some(&px) = p.get(x as usize) {
        if px == x {
            break;
        }
        let g = p.get(px as usize).copied().unwrap_or(px);
        p[x as usize] = g;
        x = g;
    }
    x
}

/// Groups near-identical digests: single linkage on body L1 (at most
/// [`LINK_L1`]) over candidate pairs from [`LSH_TABLES`] sorted orders, each
/// sorting the digests by the values of 32 random buckets and comparing every
/// digest with its [`LSH_WINDOW`] predecessors that agree on the first
/// [`LSH_BUCKETS`] of them. Returns the component (an index into `rows`) of
/// every row id; `u32::MAX` for ids not in `rows`.
fn find_components(records: &[u8], rows: &[u32], seed: u64) -> Vec<u32> {
    let n = rows.len();
    let maxid = rows.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut comp = vec![u32::MAX; maxid];
    if n == 0 {
        return comp;
    }
    let bodies: Vec<[u64; 4]> = rows
        .par_iter()
        .map(|&r| record_body_words(rec(records, r)))
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x1f2e_3d4c);
    let mut parent: Vec<u32> = (0..n as u32).collect();
    let shift = 64 - 2 * LSH_BUCKETS as u32;
    for _ in 0..LSH_TABLES {
        let picks: Vec<usize> = (0..32).map(|_| rng.random_range(0..128)).collect();
        let mut keyed: Vec<(u64, u32)> = bodies
            .par_iter()
            .enumerate()
            .map(|(i, w)| {
                let mut k = 0u64;
                for &b in &picks {
                    k = (k << 2) | u64::from(lane(w, b));
                }
                (k, i as u32)
            })
            .collect();
        keyed.par_sort_unstable();
        // Bodies in sorted order, so the window comparisons read memory in order.
        let sorted: Vec<[u64; 4]> = keyed
            .par_iter()
            .map(|&(_, i)| bodies.get(i as usize).copied().unwrap_or_default())
            .collect();
        let (keyed, sorted) = (&keyed, &sorted);
        let pairs: Vec<(u32, u32)> = (1..n)
            .into_par_iter()
            .flat_map_iter(|j| {
                let (k, a) = keyed[j];
                let wa = sorted[j];
                (j.saturating_sub(LSH_WINDOW)..j).filter_map(move |i| {
                    let (ki, b) = keyed[i];
                    ((ki >> shift) == (k >> shift) && body_l1(&wa, &sorted[i]) <= LINK_L1)
                        .then_some((a, b))
                })
            })
            .collect();
        for (a, b) in pairs {
            let (ra, rb) = (uf_find(&mut parent, a), uf_find(&mut parent, b));
            if ra != rb {
                parent[ra.max(rb) as usize] = ra.min(rb);
            }
        }
    }
    for (i, &r) in rows.iter().enumerate() {
        let c = uf_find(&mut parent, i as u32);
        if let Some(x) = comp.get_mut(r as usize) {
            *x = c;
        }
    }
    comp
}

/// The family part: `comp[row]` names the component of every row. Levels:
/// the components' L range, then the components (subdivided by
/// [`build_header_level`] when larger than a leaf).
fn build_components(
    records: &[u8],
    rows: &mut [u32],
    comp: &[u32],
    start: usize,
    leaf: usize,
    seed: u64,
) -> Tmp {
    let cid = |r: u32| comp.get(r as usize).copied().unwrap_or(u32::MAX);
    rows.par_sort_unstable_by_key(|&r| (cid(r), r));
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let c = cid(rows[i]);
        let len = rows[i..].iter().take_while(|&&r| cid(r) == c).count();
        runs.push((i, i + len));
        i += len;
    }
    // Sort key of a row: its component's L range, Q1 range, Q2 range, then
    // the component; a group of components sharing ranges has the same
    // header bound as each of them.
    let keys: Vec<u64> = runs
        .par_iter()
        .enumerate()
        .map(|(ci, &(a, b))| {
            let (mut l, mut q1, mut q2) = ((255u8, 0u8), (15u8, 0u8), (15u8, 0u8));
            for &r in rows.get(a..b).unwrap_or(&[]) {
                let (x, y, z) = hdr(rec(records, r));
                l = (l.0.min(x), l.1.max(x));
                q1 = (q1.0.min(y), q1.1.max(y));
                q2 = (q2.0.min(z), q2.1.max(z));
            }
            let hk = (u64::from(l.0) << 24)
                | (u64::from(l.1) << 16)
                | (u64::from(q1.0) << 12)
                | (u64::from(q1.1) << 8)
                | (u64::from(q2.0) << 4)
                | u64::from(q2.1);
            (hk << 32) | ci as u64
        })
        .collect();
    let mut rk: Vec<(u64, u32)> = Vec::with_capacity(rows.len());
    for (&(a, b), &k) in runs.iter().zip(&keys) {
        for &r in rows.get(a..b).unwrap_or(&[]) {
            rk.push((k, r));
        }
    }
    rk.par_sort_unstable();
    for (d, (_, r)) in rows.iter_mut().zip(&rk) {
        *d = *r;
    }
    let key: Vec<u64> = rk.iter().map(|x| x.0).collect();
    build_keyed(records, rows, &key, start, 0, leaf, seed)
}

fn build_keyed(
    records: &[u8],
    rows: &mut [u32],
    key: &[u64],
    start: usize,
    level: u8,
    leaf: usize,
    seed: u64,
) -> Tmp {
    // Level 0 groups by the L range (the top 16 bits of the key), level 1
    // makes one child per component (the whole key).
    if level >= 2 {
        if rows.len() <= leaf {
            let mut node = node_stats(records, rows);
            node.start = start as u32;
            node.end = (start + rows.len()) as u32;
            return Tmp {
                node,
                children: Vec::new(),
            };
        }
        return build_header_level(records, rows, start, 0, leaf, seed);
    }
    let mut node = node_stats(records, rows);
    node.start = start as u32;
    node.end = (start + rows.len()) as u32;
    let kf = |k: u64| -> u64 {
        match level {
            0 => k >> 48,
            _ => k,
        }
    };
    let mut lens: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < key.len() {
        let k0 = kf(key[i]);
        let len = key[i..].iter().take_while(|&&k| kf(k) == k0).count().max(1);
        lens.push(len);
        i += len;
    }
    if lens.len() == 1 {
        // One group: no node of its own (its bounds would be its child's).
        return build_keyed(records, rows, key, start, level + 1, leaf, seed);
    }
    let mut next = level + 1;
    if lens.len() > MAX_FANOUT {
        // Too many components in one header group: group consecutive ones
        // under intermediate nodes (same level, fewer components each).
        let per = lens.len().div_ceil(BRANCHING);
        lens = lens.chunks(per).map(|c| c.iter().sum()).collect();
        next = level;
    }
    let mut parts: Vec<(usize, &mut [u32], &[u64])> = Vec::with_capacity(lens.len());
    let mut rest = rows;
    let mut krest = key;
    let mut at = start;
    for len in lens {
        let len = len.min(rest.len()).min(krest.len());
        let (head, tail) = rest.split_at_mut(len);
        let (kh, kt) = krest.split_at(len);
        parts.push((at, head, kh));
        at += len;
        rest = tail;
        krest = kt;
    }
    let children: Vec<Tmp> = parts
        .into_par_iter()
        .enumerate()
        .map(|(i, (st, p, k))| {
            build_keyed(
                records,
                p,
                k,
                st,
                next,
                leaf,
                seed.wrapping_mul(131).wrapping_add(i as u64 + 1),
            )
        })
        .collect();
    Tmp { node, children }
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
    let key = |r: u32| -> u8 {
        let x = rec(records, r);
        match level {
            0 => hdr(x).0,
            _ => x.get(2).copied().unwrap_or(0),
        }
    };
    rows.sort_by_key(|&r| key(r));
    let mut lens: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let k0 = key(rows[i]);
        let len = rows[i..]
            .iter()
            .take_while(|&&r| key(r) == k0)
            .count()
            .max(1);
        lens.push(len);
        i += len;
    }
    if lens.len() <= 1 {
        // One header value: no node of its own (its bounds would be its child's).
        return build_header_level(records, rows, start, level + 1, leaf, seed);
    }
    let mut node = node_stats(records, rows);
    node.start = start as u32;
    node.end = (start + rows.len()) as u32;
    let mut parts: Vec<(usize, &mut [u32])> = Vec::with_capacity(lens.len());
    let mut rest = rows;
    let mut at = start;
    for len in lens {
        let (head, tail) = rest.split_at_mut(len.min(rest.len()));
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
/// Best-first: nodes wait in a priority queue by lower bound, the smallest
/// is expanded next (a leaf is scanned, an inner node's children get their
/// bounds, computed together with the SIMD kernel), and the search stops
/// when the smallest pending bound exceeds the sink's threshold, which only
/// ever decreases. So the most promising leaf tightens the threshold first,
/// and every pruning compares a valid lower bound with the threshold using
/// `>`, whatever the shape of the tree.
///
/// `bounds` holds the [`NodeBounds`] of `nodes` (same length and order;
/// [`node_bounds`]); a search with bounds of other nodes is not exact.
pub fn search(
    nodes: &[Node],
    bounds: &[NodeBounds],
    records: &[u8],
    q: &TlshQuery,
    sink: &mut dyn TlshSink,
    stats: &mut SearchStats,
) {
    if bounds.len() != nodes.len() {
        return;
    }
    let Some(root) = nodes.first() else { return };
    stats.nodes += 1;
    let bound = sink.bound();
    let h = root.header_lower_bound(q);
    if h > bound {
        return;
    }
    let lb = h + root.body_lower_bound(q, bound - h);
    if lb > bound {
        return;
    }
    search_from(nodes, bounds, records, q, sink, stats, 0, lb);
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

/// Best-first search of the subtree under `root`, whose members are known
/// to be at least `lb` away. A child index must be larger than its
/// parent's (breadth-first layout, checked when a segment is opened), which
/// rules out cycles; no depth limit.
#[allow(clippy::too_many_arguments)]
fn search_from(
    nodes: &[Node],
    bounds: &[NodeBounds],
    records: &[u8],
    q: &TlshQuery,
    sink: &mut dyn TlshSink,
    stats: &mut SearchStats,
    root: u32,
    lb: u32,
) {
    use std::cmp::Reverse;
    let mut heap: std::collections::BinaryHeap<Reverse<(u32, u32)>> =
        std::collections::BinaryHeap::new();
    heap.push(Reverse((lb, root)));
    let (qb, qs) = q.body_bytes_and_s();
    let mut cost: Vec<u16> = Vec::new();
    let mut l1: Vec<u16> = Vec::new();
    while let Some(Reverse((lb, idx))) = heap.pop() {
        let bound = sink.bound();
        if lb > bound {
            // Every pending bound is at least `lb`.
            break;
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
        let nc = node.nchild as usize;
        if f <= idx as usize {
            continue;
        }
        let (Some(children), Some(cbounds)) = (nodes.get(f..f + nc), bounds.get(f..f + nc)) else {
            continue;
        };
        stats.nodes += nc as u64;
        if cost.len() < nc {
            cost.resize(nc, 0);
            l1.resize(nc, 0);
        }
        let (cost, l1) = (&mut cost[..nc], &mut l1[..nc]);
        let simd = crate::simd::center_costs(
            &qb,
            &qs,
            bytemuck::cast_slice(cbounds),
            NODE_BOUNDS_BYTES,
            cost,
            l1,
        );
        for (i, (b, c)) in cbounds.iter().zip(children).enumerate() {
            let [lmin, lmax, q1min, q1max, q2min, q2max] = b.ranges;
            let hc = q.header_range_bound((lmin, lmax), (q1min, q1max), (q2min, q2max));
            if hc > bound {
                continue;
            }
            let (d1, far) = match (simd, cost.get(i), l1.get(i)) {
                (true, Some(&cc), Some(&dd)) => {
                    let (cc, dd) = (u32::from(cc), u32::from(dd));
                    (dd, cc.saturating_sub(dd) / 3)
                }
                _ => q.body_l1_and_far(&record_body_words(&b.center)),
            };
            let ball = d1.saturating_sub(u32::from(b.radius))
                + 3 * far.saturating_sub(u32::from(b.rlanes));
            let need = bound - hc;
            let body = if ball > need {
                ball
            } else {
                ball.max(q.value_set_lower_bound(&c.planes))
            };
            // A child's members are the parent's: the parent's bound holds too.
            let clb = (hc + body).max(lb);
            if clb <= bound {
                heap.push(Reverse((clb, (f + i) as u32)));
                // Start fetching what expanding the child will read.
                if c.is_leaf() {
                    let at = c.start as usize * DIGEST_LEN;
                    if let Some(b) = records.get(at..) {
                        crate::simd::prefetch(b, PREFETCH_LINES);
                    }
                } else if let Some(g) = nodes.get(c.first_child as usize..) {
                    crate::simd::prefetch(bytemuck::cast_slice(g), PREFETCH_LINES);
                }
            }
        }
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
                    search(&tree.nodes, &tree.bounds, &ordered, &q, &mut sink, &mut st);
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
                    &tree.bounds,
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
        search_from(
            &arranged,
            &node_bounds(&arranged),
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

    /// Keeps the k smallest (distance, position), ties by position, like the engine.
    struct TopK {
        k: usize,
        cutoff: u32,
        hits: Vec<(u32, u32)>,
    }
    impl TlshSink for TopK {
        fn bound(&self) -> u32 {
            if self.hits.len() >= self.k {
                self.hits
                    .last()
                    .map_or(self.cutoff, |h| h.0.min(self.cutoff))
            } else {
                self.cutoff
            }
        }
        fn offer(&mut self, pos: u32, dist: u32) {
            let e = (dist, pos);
            let at = self.hits.partition_point(|h| *h < e);
            self.hits.insert(at, e);
            self.hits.truncate(self.k);
        }
    }

    fn ordered_records(tree: &Tree, recs: &[u8]) -> Vec<u8> {
        tree.order
            .iter()
            .flat_map(|&r| rec(recs, r).to_vec())
            .collect()
    }

    fn check_topk(tree: &Tree, recs: &[u8], queries: &[[u8; DIGEST_LEN]], what: &str) {
        let ordered = ordered_records(tree, recs);
        let n = tree.order.len();
        for (qi, qrec) in queries.iter().enumerate() {
            for len in [true, false] {
                let q = TlshQuery::new(Digest::from_bytes(*qrec), len);
                for (k, cutoff) in [(1usize, 100u32), (10, 100), (10, 1000), (200, 60)] {
                    let mut sink = TopK {
                        k,
                        cutoff,
                        hits: Vec::new(),
                    };
                    search(
                        &tree.nodes,
                        &tree.bounds,
                        &ordered,
                        &q,
                        &mut sink,
                        &mut SearchStats::default(),
                    );
                    let mut want: Vec<(u32, u32)> = (0..n)
                        .filter_map(|p| {
                            let d = q.distance(&ordered[p * DIGEST_LEN..(p + 1) * DIGEST_LEN]);
                            (d <= cutoff).then_some((d, p as u32))
                        })
                        .collect();
                    want.sort_unstable();
                    want.truncate(k);
                    assert_eq!(
                        sink.hits, want,
                        "{what}: query {qi} len {len} k {k} cutoff {cutoff}"
                    );
                }
            }
        }
    }

    #[test]
    fn tree_topk_equals_brute_force_on_families_and_dense_clusters() {
        // Families of variable size (components of the family part), a dense
        // cluster of 1500 near-duplicates (a component split further) and
        // unrelated digests (the header part).
        let mut rng = rand::rngs::StdRng::seed_from_u64(77);
        let mut recs = family_records(6000, 3);
        let mut base = [0u8; DIGEST_LEN];
        rng.fill(&mut base[..]);
        for i in 0..1500usize {
            let mut x = base;
            x[3 + rng.random_range(0..32)] ^= 1 << rng.random_range(0..8);
            if i % 4 == 0 {
                x[3 + rng.random_range(0..32)] ^= 3 << (2 * rng.random_range(0..4));
            }
            x[0] = rng.random();
            x[2] = if i % 3 == 0 { x[2] ^ 0x10 } else { x[2] };
            recs.extend_from_slice(&x);
        }
        for _ in 0..1000 {
            let mut x = [0u8; DIGEST_LEN];
            rng.fill(&mut x[..]);
            recs.extend_from_slice(&x);
        }
        let n = recs.len() / DIGEST_LEN;
        let mut queries = Vec::new();
        for qi in 0..40 {
            let mut x = [0u8; DIGEST_LEN];
            if qi % 4 == 3 {
                rng.fill(&mut x[..]);
            } else {
                x.copy_from_slice(rec(&recs, rng.random_range(0..n as u32)));
                for _ in 0..rng.random_range(0..6) {
                    x[rng.random_range(1..DIGEST_LEN)] ^= 1 << rng.random_range(0..8);
                }
            }
            queries.push(x);
        }
        queries.push(base);
        for (leaf, seed) in [(8usize, 1u64), (32, 2)] {
            let tree = build(&recs, (0..n as u32).collect(), leaf, seed);
            check_shape(&tree.nodes, n).unwrap();
            let mut sorted = tree.order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n as u32).collect::<Vec<_>>());
            check_topk(&tree, &recs, &queries, &format!("leaf {leaf}"));
        }
    }

    #[test]
    fn tree_groups_components_sharing_one_header() {
        // More components with one median header than one node may have as
        // children: they are grouped under intermediate nodes.
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let groups = MAX_FANOUT + 500;
        let mut recs = Vec::with_capacity(groups * 4 * DIGEST_LEN);
        for _ in 0..groups {
            let mut x = [0u8; DIGEST_LEN];
            rng.fill(&mut x[..]);
            (x[1], x[2]) = (0x31, 0x44);
            for j in 0..4 {
                let mut y = x;
                y[3 + j] ^= 1;
                recs.extend_from_slice(&y);
            }
        }
        let n = recs.len() / DIGEST_LEN;
        let tree = build(&recs, (0..n as u32).collect(), 16, 9);
        check_shape(&tree.nodes, n).unwrap();
        assert!(tree.nodes.iter().all(|x| x.nchild as usize <= MAX_FANOUT));
        let queries: Vec<[u8; DIGEST_LEN]> = (0..6)
            .map(|i| {
                let mut x = [0u8; DIGEST_LEN];
                x.copy_from_slice(rec(&recs, (i * 2777 % n) as u32));
                x[10] ^= 4;
                x
            })
            .collect();
        check_topk(&tree, &recs, &queries, "one header");
    }

    #[test]
    fn components_link_near_duplicates_only() {
        let recs = family_records(2000, 11);
        let rows: Vec<u32> = (0..2000).collect();
        let comp = find_components(&recs, &rows, 1);
        let mut linked = 0;
        for a in 0..2000u32 {
            for b in (a + 1)..2000u32.min(a + 12) {
                if comp[a as usize] == comp[b as usize] {
                    linked += 1;
                }
            }
        }
        // family_records makes families of 10 consecutive rows a few bits apart.
        assert!(linked > 2000, "only {linked} near pairs linked");
        let distinct: std::collections::HashSet<u32> = comp.iter().copied().collect();
        assert!(distinct.len() >= 150, "families merged: {}", distinct.len());
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
