//! The bounded exact-sum search behind grouped matches: which few of the
//! candidates add up to the target, in minor units, within a step budget.

/// What one search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// Indices into the candidates (in their order) that sum to the target,
    /// from the smallest group size that has one. `another` says a second
    /// combination of that size also sums to it.
    Group {
        members: Vec<usize>,
        another: bool,
    },
    Nothing,
    /// The budget ran out before the search was done.
    Cut,
}

/// Finds members of `amounts` (positive, sorted largest first) summing to
/// `target` (positive), 2 to `max_size` of them. Each visited node costs one
/// step of `budget`. Pruning: a slot is skipped when even the smallest
/// remaining amounts overshoot, a level stops when even the largest
/// remaining ones fall short (prefix sums make both O(1)), and an amount
/// equal to a sibling that already failed is not tried again (its subtree is
/// a subset of the sibling's) — which is what keeps thousands of identical
/// amounts from exploding.
pub(crate) fn find(target: i64, amounts: &[i64], max_size: usize, budget: &mut usize) -> Found {
    let mut prefix = Vec::with_capacity(amounts.len() + 1);
    let mut sum: i128 = 0;
    prefix.push(sum);
    for &a in amounts {
        sum += i128::from(a);
        prefix.push(sum);
    }
    let mut search = Search {
        amounts,
        prefix,
        budget,
        chosen: vec![],
        found: vec![],
        cut: false,
    };
    for size in 2..=max_size.min(amounts.len()) {
        search.go(0, i128::from(target), size);
        if let Some(first) = search.found.first() {
            return Found::Group {
                members: first.clone(),
                another: search.found.len() > 1,
            };
        }
        if search.cut {
            return Found::Cut;
        }
    }
    Found::Nothing
}

struct Search<'a> {
    amounts: &'a [i64],
    prefix: Vec<i128>,
    budget: &'a mut usize,
    chosen: Vec<usize>,
    found: Vec<Vec<usize>>,
    cut: bool,
}

impl Search<'_> {
    fn step(&mut self) -> bool {
        if *self.budget == 0 {
            self.cut = true;
            return false;
        }
        *self.budget -= 1;
        true
    }

    /// Returns `true` when the search should stop (two found, or cut).
    fn go(&mut self, start: usize, remaining: i128, slots: usize) -> bool {
        if !self.step() {
            return true;
        }
        if slots == 0 {
            if remaining == 0 {
                self.found.push(self.chosen.clone());
            }
            return self.found.len() >= 2;
        }
        let len = self.amounts.len();
        if start + slots > len {
            return false;
        }
        let smallest_rest = self.prefix[len] - self.prefix[len - (slots - 1)];
        let mut failed_amount = None;
        for i in start..=len - slots {
            if !self.step() {
                return true;
            }
            if self.prefix[i + slots] - self.prefix[i] < remaining {
                break;
            }
            let amount = self.amounts[i];
            if i128::from(amount) + smallest_rest > remaining || failed_amount == Some(amount) {
                continue;
            }
            let before = self.found.len();
            self.chosen.push(i);
            let stop = self.go(i + 1, remaining - i128::from(amount), slots - 1);
            self.chosen.pop();
            if stop {
                return true;
            }
            if self.found.len() == before {
                failed_amount = Some(amount);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(target: i64, amounts: &[i64], max_size: usize, expected: Found) {
        let mut budget = 100_000;
        assert_eq!(find(target, amounts, max_size, &mut budget), expected);
    }

    #[test]
    fn the_smallest_group_that_sums_exactly_is_found() {
        check(
            900,
            &[500, 400, 300, 200],
            6,
            Found::Group {
                members: vec![0, 1],
                another: false,
            },
        );
        check(
            700,
            &[500, 400, 300, 200],
            6,
            Found::Group {
                members: vec![0, 3],
                another: true,
            },
        );
        check(
            1000,
            &[500, 400, 300, 200],
            6,
            Found::Group {
                members: vec![0, 2, 3],
                another: false,
            },
        );
        check(
            1400,
            &[500, 400, 300, 200],
            6,
            Found::Group {
                members: vec![0, 1, 2, 3],
                another: false,
            },
        );
    }

    #[test]
    fn nothing_is_found_when_no_subset_sums_exactly() {
        check(1401, &[500, 400, 300, 200], 6, Found::Nothing);
        check(500, &[500], 6, Found::Nothing);
        check(1400, &[500, 400, 300, 200], 3, Found::Nothing);
    }

    #[test]
    fn identical_amounts_do_not_explode_the_search() {
        let amounts = vec![300; 5_000];
        let mut budget = 1_000_000;
        let found = find(301 * 6, &amounts, 6, &mut budget);
        assert_eq!(found, Found::Nothing);
        assert!(budget > 900_000, "used {}", 1_000_000 - budget);
    }

    #[test]
    fn an_exhausted_budget_says_the_search_was_cut() {
        // Every amount is 1 modulo 7, so k of them sum to k modulo 7 and no
        // group of 2 to 6 reaches a multiple of 7; the bounds prune little.
        let amounts: Vec<i64> = (0..200).rev().map(|i| 7 * i + 1).collect();
        let mut budget = 10_000;
        assert_eq!(find(7 * 300, &amounts, 6, &mut budget), Found::Cut);
        assert_eq!(budget, 0);
    }
}
