//! The job graph: topological order and cycles.
//!
//! Both are iterative (no recursion), so a pathological file with a very long chain of
//! `needs` cannot overflow the stack.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Orders nodes so that every node comes after all of its `needs`. Among nodes that are
/// ready at the same time the lowest index goes first, so the order follows the file as
/// far as the dependencies allow.
///
/// On a cycle, returns the cycles found instead, each as a list of nodes where every node
/// needs the next and the last needs the first, rotated to start at its lowest index.
pub(crate) fn toposort(needs: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let n = needs.len();
    let mut waiting: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (job, ns) in needs.iter().enumerate() {
        for &need in ns {
            dependents[need].push(job);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    Err(cycles(needs, &waiting))
}

/// Finds cycles among the nodes Kahn's algorithm could not order (`waiting > 0`). Every
/// such node needs at least one other such node, so following those edges from any of
/// them must come back to a node already on the path: that loop is a cycle.
fn cycles(needs: &[Vec<usize>], waiting: &[usize]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let stuck = |i: usize| waiting[i] > 0;
    // Which walk first visited a node, so a later walk that runs into an earlier one stops.
    let mut walk_of = vec![UNSEEN; needs.len()];
    let mut found = Vec::new();
    for start in (0..needs.len()).filter(|&i| stuck(i)) {
        if walk_of[start] != UNSEEN {
            continue;
        }
        let mut path = Vec::new();
        let mut at = start;
        loop {
            if walk_of[at] == start {
                let from = path.iter().position(|&p| p == at).unwrap_or(0);
                let mut cycle: Vec<usize> = path[from..].to_vec();
                let min = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, v)| **v)
                    .map_or(0, |(i, _)| i);
                cycle.rotate_left(min);
                found.push(cycle);
                break;
            }
            if walk_of[at] != UNSEEN {
                break;
            }
            walk_of[at] = start;
            path.push(at);
            match needs[at].iter().copied().find(|&nx| stuck(nx)) {
                Some(next) => at = next,
                None => break,
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(needs: &[&[usize]], expect: Result<Vec<usize>, Vec<Vec<usize>>>) {
        let needs: Vec<Vec<usize>> = needs.iter().map(|n| n.to_vec()).collect();
        assert_eq!(toposort(&needs), expect, "{needs:?}");
    }

    #[test]
    fn orders_and_finds_cycles() {
        check(&[], Ok(vec![]));
        check(&[&[], &[0], &[1]], Ok(vec![0, 1, 2]));
        // File order is kept where dependencies allow it.
        check(&[&[2], &[], &[]], Ok(vec![1, 2, 0]));
        check(&[&[1, 2], &[], &[1]], Ok(vec![1, 2, 0]));
        // Diamond.
        check(&[&[], &[0], &[0], &[1, 2]], Ok(vec![0, 1, 2, 3]));
        // build(0) needs test(1), test needs build.
        check(&[&[1], &[0]], Err(vec![vec![0, 1]]));
        check(&[&[0]], Err(vec![vec![0]]));
        // 0 -> needs 2 -> needs 1 -> needs 0; 3 hangs off the cycle.
        check(&[&[2], &[0], &[1], &[0]], Err(vec![vec![0, 2, 1]]));
        // Two separate cycles.
        check(
            &[&[1], &[0], &[], &[4], &[3]],
            Err(vec![vec![0, 1], vec![3, 4]]),
        );
        // A node downstream of a cycle, listed first.
        check(&[&[1], &[2], &[1]], Err(vec![vec![1, 2]]));
    }

    #[test]
    fn long_chains_do_not_recurse() {
        let n = 200_000;
        let needs: Vec<Vec<usize>> = (0..n)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        assert_eq!(toposort(&needs).map(|o| o.len()), Ok(n));
    }
}
