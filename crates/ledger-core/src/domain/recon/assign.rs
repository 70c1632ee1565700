//! Ties resolved as an assignment: among lines and transfers that could each
//! be paired several ways, the pairing with the most pairs and then the
//! smallest total date distance, not whichever came first.

/// Exact (Hungarian) assignment up to this many rows and columns; a larger
/// tie (hundreds of identical payments from one payer) falls back to a
/// greedy pairing by cost, which is deterministic but not always optimal.
pub(crate) const EXACT_LIMIT: usize = 64;

/// Distances beyond this many working days all cost the same: they are all
/// implausible, and the bound keeps the scaled costs small.
const COST_CAP: u64 = 1_000;

/// Above every real scaled cost of a whole assignment, below overflow even
/// when summed over [`EXACT_LIMIT`] rows.
const FORBIDDEN: i64 = 1_000_000_000_000;

/// `rows` × `cols` items, `edges` the allowed pairs `(row, col, cost)` with
/// rows and columns numbered in id order. Returns the chosen pairs, sorted.
///
/// Equal total costs are broken towards pairing the k-th row with the k-th
/// column (each cost is scaled and `|row - col|` added), so identical
/// payments pair up in id order rather than arbitrarily.
pub(crate) fn assign(
    rows: usize,
    cols: usize,
    edges: &[(usize, usize, u64)],
) -> Vec<(usize, usize)> {
    if rows == 0 || cols == 0 || edges.is_empty() {
        return vec![];
    }
    if rows > EXACT_LIMIT || cols > EXACT_LIMIT {
        return greedy(edges);
    }
    // Any improvement of one unit of distance must outweigh every possible
    // difference in the summed tie-breaks.
    let scale = (EXACT_LIMIT * EXACT_LIMIT + 1) as i64;
    let transpose = rows > cols;
    let (n, m) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let mut cost = vec![vec![FORBIDDEN; m]; n];
    for &(r, c, distance) in edges {
        let (i, j) = if transpose { (c, r) } else { (r, c) };
        // Both bounded by the constants above: no overflow.
        let scaled = distance.min(COST_CAP) as i64 * scale + r.abs_diff(c) as i64;
        if scaled < cost[i][j] {
            cost[i][j] = scaled;
        }
    }
    let mut pairs: Vec<(usize, usize)> = hungarian(&cost, n, m)
        .into_iter()
        .filter(|&(i, j)| cost[i][j] < FORBIDDEN)
        .map(|(i, j)| if transpose { (j, i) } else { (i, j) })
        .collect();
    pairs.sort_unstable();
    pairs
}

fn greedy(edges: &[(usize, usize, u64)]) -> Vec<(usize, usize)> {
    let mut order: Vec<&(usize, usize, u64)> = edges.iter().collect();
    order.sort_unstable_by_key(|&&(r, c, d)| (d.min(COST_CAP), r.abs_diff(c), r, c));
    let mut used_rows = std::collections::HashSet::new();
    let mut used_cols = std::collections::HashSet::new();
    let mut pairs = vec![];
    for &&(r, c, _) in &order {
        if !used_rows.contains(&r) && !used_cols.contains(&c) {
            used_rows.insert(r);
            used_cols.insert(c);
            pairs.push((r, c));
        }
    }
    pairs.sort_unstable();
    pairs
}

/// Minimum-cost assignment of every row of an `n` × `m` matrix (`n <= m`)
/// to a distinct column: the O(n²m) potentials method. Returns `(row, col)`.
fn hungarian(cost: &[Vec<i64>], n: usize, m: usize) -> Vec<(usize, usize)> {
    let inf = i64::MAX / 4;
    // 1-based, column 0 is the virtual start, as in the textbook form.
    let mut u = vec![0i64; n + 1];
    let mut v = vec![0i64; m + 1];
    let mut owner = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        owner[0] = i;
        let mut j0 = 0;
        let mut min_v = vec![inf; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = owner[j0];
            let mut delta = inf;
            let mut j1 = 0;
            for j in 1..=m {
                if !used[j] {
                    let reduced = cost[i0 - 1][j - 1] - u[i0] - v[j];
                    if reduced < min_v[j] {
                        min_v[j] = reduced;
                        way[j] = j0;
                    }
                    if min_v[j] < delta {
                        delta = min_v[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[owner[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_v[j] -= delta;
                }
            }
            j0 = j1;
            if owner[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            owner[j0] = owner[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    (1..=m)
        .filter(|&j| owner[j] != 0)
        .map(|j| (owner[j] - 1, j - 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(rows: usize, cols: usize, edges: &[(usize, usize, u64)], expected: &[(usize, usize)]) {
        assert_eq!(assign(rows, cols, edges), expected);
    }

    #[test]
    fn the_assignment_beats_first_come() {
        // First come would give row 0 its nearest column 0 and leave row 1
        // with nothing; the assignment pairs both.
        check(2, 2, &[(0, 0, 0), (0, 1, 1), (1, 0, 0)], &[(0, 1), (1, 0)]);
    }

    #[test]
    fn the_assignment_minimises_total_distance() {
        check(
            2,
            2,
            &[(0, 0, 5), (0, 1, 1), (1, 0, 1), (1, 1, 5)],
            &[(0, 1), (1, 0)],
        );
    }

    #[test]
    fn equal_costs_pair_in_id_order() {
        let all: Vec<_> = (0..3)
            .flat_map(|r| (0..3).map(move |c| (r, c, 2)))
            .collect();
        check(3, 3, &all, &[(0, 0), (1, 1), (2, 2)]);
    }

    #[test]
    fn more_rows_than_columns_leave_the_farthest_row_out() {
        check(3, 1, &[(0, 0, 3), (1, 0, 1), (2, 0, 2)], &[(1, 0)]);
    }

    #[test]
    fn a_tie_too_large_for_the_exact_method_is_paired_greedily() {
        let n = EXACT_LIMIT + 1;
        let edges: Vec<_> = (0..n).map(|i| (i, n - 1 - i, 0)).collect();
        let pairs = assign(n, n, &edges);
        assert_eq!(pairs.len(), n);
    }
}
