//! A run's job DAG laid out for SVG: left to right by dependency depth (a job sits one
//! column right of its deepest need), matrix instances of one job stacked together and
//! framed as a group, edges as curves from a need's right side to its dependent's left.

use crate::web::view::Status;

/// Node width and height, gaps between columns and rows, and the outer margin (px).
const W: i64 = 180;
const H: i64 = 40;
const GAP_X: i64 = 60;
const GAP_Y: i64 = 14;
const MARGIN: i64 = 12;
/// Extra room around a matrix group (its frame and label).
const GROUP_PAD: i64 = 6;
const GROUP_LABEL: i64 = 16;

/// What the layout needs of a job.
#[derive(Debug, Clone)]
pub struct GraphJob {
    /// Key (for `data-job` and links).
    pub key: String,
    /// Display name.
    pub name: String,
    /// The job's key in the file (matrix instances share it).
    pub base: String,
    /// Whether it is a matrix instance.
    pub matrix: bool,
    /// Positions (in this list) of its needs.
    pub needs: Vec<usize>,
    /// Status.
    pub status: Status,
    /// Link to its log.
    pub href: String,
    /// Duration text.
    pub duration: String,
}

/// A placed node.
#[derive(Debug)]
pub struct Node {
    /// The job.
    pub job: GraphJob,
    /// Left edge.
    pub x: i64,
    /// Top edge.
    pub y: i64,
    /// Label shortened to fit.
    pub label: String,
}

/// An edge between two nodes.
#[derive(Debug)]
pub struct Edge {
    /// Key of the need.
    pub from: String,
    /// Key of the dependent.
    pub to: String,
    /// SVG path data.
    pub d: String,
}

/// A frame around the matrix instances of one job.
#[derive(Debug)]
pub struct Group {
    /// The job's key in the file.
    pub base: String,
    /// Frame.
    pub x: i64,
    /// Frame.
    pub y: i64,
    /// Frame.
    pub w: i64,
    /// Frame.
    pub h: i64,
}

/// The laid-out graph.
#[derive(Debug)]
pub struct Graph {
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Edges.
    pub edges: Vec<Edge>,
    /// Matrix frames.
    pub groups: Vec<Group>,
    /// Canvas width.
    pub width: i64,
    /// Canvas height.
    pub height: i64,
    /// Node size, for the template.
    pub node_w: i64,
    /// Node size, for the template.
    pub node_h: i64,
}

fn shorten(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_string();
    }
    let mut s: String = name.chars().take(max - 1).collect();
    s.push('…');
    s
}

/// Lays out `jobs` (in plan order: needs come first).
pub fn layout(jobs: Vec<GraphJob>) -> Graph {
    let n = jobs.len();
    let mut depth = vec![0usize; n];
    for i in 0..n {
        // Plan order is topological, but a need that points forward (a broken plan)
        // must not panic or loop: it is read as depth 0.
        depth[i] = jobs[i]
            .needs
            .iter()
            .filter(|&&d| d < i)
            .map(|&d| depth[d] + 1)
            .max()
            .unwrap_or(0);
    }
    let columns = depth.iter().copied().max().map_or(0, |d| d + 1);
    // Column contents: matrix instances of one base kept together, in plan order of
    // the first instance.
    let mut col_items: Vec<Vec<Vec<usize>>> = vec![Vec::new(); columns];
    for i in 0..n {
        let col = &mut col_items[depth[i]];
        match col
            .iter_mut()
            .find(|g| jobs[i].matrix && jobs[g[0]].matrix && jobs[g[0]].base == jobs[i].base)
        {
            Some(g) => g.push(i),
            None => col.push(vec![i]),
        }
    }
    let mut pos = vec![(0i64, 0i64); n];
    let mut groups = Vec::new();
    let mut height = 0;
    for (c, items) in col_items.iter().enumerate() {
        let x = MARGIN + GROUP_PAD + c as i64 * (W + GAP_X);
        let mut y = MARGIN;
        for g in items {
            let framed = g.len() > 1 || jobs[g[0]].matrix;
            if framed {
                y += GROUP_LABEL;
            }
            let top = y;
            for &i in g {
                pos[i] = (x, y);
                y += H + GAP_Y;
            }
            if framed {
                groups.push(Group {
                    base: jobs[g[0]].base.clone(),
                    x: x - GROUP_PAD,
                    y: top - GROUP_LABEL,
                    w: W + 2 * GROUP_PAD,
                    h: y - GAP_Y - top + GROUP_LABEL + GROUP_PAD,
                });
                y += GROUP_PAD + GAP_Y;
            }
        }
        height = height.max(y);
    }
    let mut edges = Vec::new();
    for (i, j) in jobs.iter().enumerate() {
        for &d in &j.needs {
            if d >= i {
                continue;
            }
            let (x1, y1) = (pos[d].0 + W, pos[d].1 + H / 2);
            let (x2, y2) = (pos[i].0, pos[i].1 + H / 2);
            let mid = (x1 + x2) / 2;
            edges.push(Edge {
                from: jobs[d].key.clone(),
                to: j.key.clone(),
                d: format!("M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"),
            });
        }
    }
    let nodes = jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| Node {
            x: pos[i].0,
            y: pos[i].1,
            label: shorten(&job.name, 22),
            job,
        })
        .collect();
    Graph {
        nodes,
        edges,
        groups,
        width: 2 * MARGIN + 2 * GROUP_PAD + columns as i64 * (W + GAP_X) - GAP_X,
        height: height.max(MARGIN + H) + MARGIN,
        node_w: W,
        node_h: H,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::view::status;

    fn job(key: &str, base: &str, matrix: bool, needs: &[usize]) -> GraphJob {
        GraphJob {
            key: key.into(),
            name: key.into(),
            base: base.into(),
            matrix,
            needs: needs.to_vec(),
            status: status("succeeded"),
            href: String::new(),
            duration: String::new(),
        }
    }

    #[test]
    fn columns_follow_dependency_depth() {
        let g = layout(vec![
            job("lint", "lint", false, &[]),
            job("build-a", "build", true, &[]),
            job("build-b", "build", true, &[]),
            job("test", "test", false, &[1, 2]),
            job("deploy", "deploy", false, &[0, 3]),
        ]);
        let x = |k: &str| g.nodes.iter().find(|n| n.job.key == k).map(|n| n.x);
        assert_eq!(x("lint"), x("build-a"));
        assert!(x("test") > x("build-a"));
        assert!(x("deploy") > x("test"));
        assert_eq!(g.edges.len(), 4);
        assert_eq!(g.groups.len(), 1);
        assert_eq!(g.groups[0].base, "build");
        // Matrix instances are stacked next to each other.
        let y = |k: &str| g.nodes.iter().find(|n| n.job.key == k).map_or(0, |n| n.y);
        assert_eq!(y("build-b") - y("build-a"), H + GAP_Y);
    }

    #[test]
    fn forward_needs_do_not_break_the_layout() {
        let g = layout(vec![job("a", "a", false, &[1]), job("b", "b", false, &[])]);
        assert_eq!(g.nodes.len(), 2);
        assert!(g.edges.is_empty());
    }

    #[test]
    fn long_names_are_shortened() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
