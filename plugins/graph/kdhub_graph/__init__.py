"""kdhub-graph: distil GNN teachers (GCN, GraphSAGE, GAT) into graph-free MLP students (GLNN, FF-G2M)."""
