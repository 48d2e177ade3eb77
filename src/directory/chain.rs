//! Finding the chain of groups from an account up to a linked group, in a
//! graph of groups read from the directory (each group with its parents).

use std::collections::{HashMap, HashSet, VecDeque};

use crate::model::{ChainStep, GroupChain, ObjectId};

/// Enough for any real nesting; bounds the reads of one `explain`.
pub const MAX_NODES: usize = 5000;

pub struct Node {
    pub dn: String,
    pub id: ObjectId,
    pub label: String,
    pub is_security: bool,
    /// DNs of the groups this group is a member of.
    pub parents: Vec<String>,
}

#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

/// DNs compare without regard to case.
fn key(dn: &str) -> String {
    dn.to_lowercase()
}

impl Graph {
    pub fn contains(&self, dn: &str) -> bool {
        self.nodes.contains_key(&key(dn))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn insert(&mut self, node: Node) {
        self.nodes.insert(key(&node.dn), node);
    }

    /// The shortest chain from any start to the target through security
    /// groups only; failing that, the shortest through any groups.
    pub fn chain(&self, starts: &[String], target: &ObjectId) -> Option<GroupChain> {
        self.shortest(starts, target, true)
            .or_else(|| self.shortest(starts, target, false))
    }

    fn shortest(
        &self,
        starts: &[String],
        target: &ObjectId,
        security_only: bool,
    ) -> Option<GroupChain> {
        let usable = |node: &Node| !security_only || node.is_security;
        let mut previous: HashMap<String, Option<String>> = HashMap::new();
        let mut queue = VecDeque::new();
        for start in starts {
            let k = key(start);
            if let Some(node) = self.nodes.get(&k)
                && usable(node)
                && !previous.contains_key(&k)
            {
                previous.insert(k.clone(), None);
                queue.push_back(k);
            }
        }
        let mut seen: HashSet<String> = previous.keys().cloned().collect();
        while let Some(current) = queue.pop_front() {
            let node = &self.nodes[&current];
            if &node.id == target {
                return Some(self.walk_back(&previous, current, target));
            }
            for parent in &node.parents {
                let k = key(parent);
                if seen.contains(&k) {
                    continue;
                }
                if let Some(parent_node) = self.nodes.get(&k)
                    && usable(parent_node)
                {
                    seen.insert(k.clone());
                    previous.insert(k.clone(), Some(current.clone()));
                    queue.push_back(k);
                }
            }
        }
        None
    }

    fn walk_back(
        &self,
        previous: &HashMap<String, Option<String>>,
        end: String,
        target: &ObjectId,
    ) -> GroupChain {
        let mut steps = Vec::new();
        let mut at = Some(end);
        while let Some(k) = at {
            let node = &self.nodes[&k];
            steps.push(ChainStep {
                label: node.label.clone(),
                dn: node.dn.clone(),
                is_security: node.is_security,
            });
            at = previous.get(&k).cloned().flatten();
        }
        steps.reverse();
        GroupChain {
            target: target.clone(),
            steps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, security: bool, parents: &[&str]) -> Node {
        Node {
            dn: format!("CN={name},DC=corp"),
            id: ObjectId::parse(&format!("S-1-5-21-1-2-3-{}", 1000 + name.len())).unwrap(),
            label: format!("CORP\\{name}"),
            is_security: security,
            parents: parents.iter().map(|p| format!("CN={p},DC=corp")).collect(),
        }
    }

    fn labels(chain: &GroupChain) -> Vec<&str> {
        chain.steps.iter().map(|s| s.label.as_str()).collect()
    }

    #[test]
    fn finds_the_chain_three_deep_and_survives_a_cycle() {
        let mut graph = Graph::default();
        graph.insert(node("a", true, &["bb"]));
        graph.insert(node("bb", true, &["ccc", "a"]));
        graph.insert(node("ccc", true, &["bb"]));
        let target = graph.nodes[&key("CN=ccc,DC=corp")].id.clone();
        let chain = graph.chain(&["cn=A,dc=corp".into()], &target).unwrap();
        assert_eq!(labels(&chain), vec!["CORP\\a", "CORP\\bb", "CORP\\ccc"]);
        assert!(chain.distribution_step().is_none());
    }

    #[test]
    fn prefers_security_chains_and_reports_distribution_only_ones() {
        let mut graph = Graph::default();
        graph.insert(node("dist", false, &["target"]));
        graph.insert(node("sec", true, &["mid"]));
        graph.insert(node("mid", true, &["target"]));
        graph.insert(node("target", true, &[]));
        let target = graph.nodes[&key("CN=target,DC=corp")].id.clone();
        let both = graph
            .chain(
                &["CN=dist,DC=corp".into(), "CN=sec,DC=corp".into()],
                &target,
            )
            .unwrap();
        assert_eq!(
            labels(&both),
            vec!["CORP\\sec", "CORP\\mid", "CORP\\target"]
        );
        let only = graph.chain(&["CN=dist,DC=corp".into()], &target).unwrap();
        assert_eq!(only.distribution_step().unwrap().label, "CORP\\dist");
        assert!(
            graph
                .chain(&["CN=nowhere,DC=corp".into()], &target)
                .is_none()
        );
    }
}
