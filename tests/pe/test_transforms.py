import pytest
import torch
from torch_geometric.data import Batch, Data

from gatlib.graph.builders import grid_graph, path_graph
from gatlib.pe import AddLaplacianPE, AddRandomWalkPE, laplacian_pe, random_walk_pe


def graphs():
    return [Data(x=torch.randn(6, 2), edge_index=path_graph(6)),
            Data(x=torch.randn(6, 2), edge_index=grid_graph(2, 3)),
            Data(x=torch.randn(3, 2), edge_index=torch.tensor([[0], [1]]))]  # node 2 isolated


def test_add_laplacian_pe_on_data():
    data = graphs()[0]
    out = AddLaplacianPE(3)(data)
    assert out.lap_pe.shape == (6, 3) and out.lap_pe.dtype == torch.float32
    torch.testing.assert_close(out.lap_pe, laplacian_pe(data.edge_index, 6, 3))
    assert "lap_pe" not in data                          # the input is not modified
    plain = AddLaplacianPE(2, attr_name="pe", normalized=False)(data)
    torch.testing.assert_close(plain.pe, laplacian_pe(data.edge_index, 6, 2, normalized=False))


def test_add_random_walk_pe_on_data():
    data = graphs()[1]
    out = AddRandomWalkPE(4)(data)
    torch.testing.assert_close(out.rw_pe, random_walk_pe(data.edge_index, 6, 4))
    assert "rw_pe" not in data


def test_transforms_on_batch_are_per_graph():
    batch = Batch.from_data_list(graphs())
    lap = AddLaplacianPE(4)(batch)
    rw = AddRandomWalkPE(3)(batch)
    alone = Batch.from_data_list([AddRandomWalkPE(3)(AddLaplacianPE(4)(d)) for d in graphs()])
    torch.testing.assert_close(lap.lap_pe, alone.lap_pe, atol=1e-6, rtol=0)
    torch.testing.assert_close(rw.rw_pe, alone.rw_pe)
    assert (lap.lap_pe[-1] == 0).all()                   # isolated node of the last graph


def test_graph_without_edges():
    out = AddLaplacianPE(2)(Data(num_nodes=3))
    assert torch.equal(out.lap_pe, torch.zeros(3, 2))


def test_repr_and_bad_arguments():
    assert repr(AddLaplacianPE(8)) == "AddLaplacianPE(k=8, attr_name='lap_pe', normalized=True)"
    assert repr(AddRandomWalkPE(16, attr_name="rw")) == "AddRandomWalkPE(steps=16, attr_name='rw')"
    with pytest.raises(ValueError, match="k"):
        AddLaplacianPE(0)
    with pytest.raises(ValueError, match="steps"):
        AddRandomWalkPE(0)
    with pytest.raises(ValueError, match="edge_index"):
        AddLaplacianPE(2)(Data(edge_index=torch.tensor([[0], [5]]), num_nodes=3))
    with pytest.raises(TypeError, match="Data"):
        AddRandomWalkPE(2)({"edge_index": path_graph(3)})
