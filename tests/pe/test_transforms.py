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
    out = AddLaplacianPE(3, attr_name="lap_pe")(data)
    assert out.lap_pe.shape == (6, 3) and out.lap_pe.dtype == torch.float32
    torch.testing.assert_close(out.lap_pe, laplacian_pe(data.edge_index, 6, 3))
    assert "lap_pe" not in data                          # the input is not modified
    plain = AddLaplacianPE(2, attr_name="pe", normalized=False)(data)
    torch.testing.assert_close(plain.pe, laplacian_pe(data.edge_index, 6, 2, normalized=False))


def test_add_random_walk_pe_on_data():
    data = graphs()[1]
    out = AddRandomWalkPE(4, attr_name="rw_pe")(data)
    torch.testing.assert_close(out.rw_pe, random_walk_pe(data.edge_index, 6, 4))
    assert "rw_pe" not in data


def test_transforms_on_batch_are_per_graph():
    batch = Batch.from_data_list(graphs())
    lap = AddLaplacianPE(4, "lap_pe")(batch)
    rw = AddRandomWalkPE(3, "rw_pe")(batch)
    alone = Batch.from_data_list([AddRandomWalkPE(3, "rw_pe")(AddLaplacianPE(4, "lap_pe")(d))
                                  for d in graphs()])
    torch.testing.assert_close(lap.lap_pe, alone.lap_pe, atol=1e-6, rtol=0)
    torch.testing.assert_close(rw.rw_pe, alone.rw_pe)
    lap_c = AddLaplacianPE(4, "lap_pe", per_component=True)(batch)
    assert (lap_c.lap_pe[-1] == 0).all()                 # isolated node of the last graph


def test_graph_without_edges():
    out = AddLaplacianPE(2, "lap_pe", per_component=True)(Data(num_nodes=3))
    assert torch.equal(out.lap_pe, torch.zeros(3, 2))
    # PyG's reading: L = I, first eigenvector dropped, e_1 and e_2 kept.
    pyg = AddLaplacianPE(2)(Data(num_nodes=3))
    assert torch.equal(pyg.laplacian_eigenvector_pe, torch.eye(3)[:, 1:])


def test_repr_and_bad_arguments():
    # PyG's BaseTransform form: the class name and "()".
    assert repr(AddLaplacianPE(8)) == "AddLaplacianPE()"
    assert repr(AddRandomWalkPE(steps=4, simple=True)) == "AddRandomWalkPE()"
    with pytest.raises(ValueError, match="k"):
        AddLaplacianPE(0)
    with pytest.raises(ValueError, match="steps"):
        AddRandomWalkPE(0)
    with pytest.raises(ValueError, match="edge_index"):
        AddLaplacianPE(2)(Data(edge_index=torch.tensor([[0], [5]]), num_nodes=3))
    with pytest.raises(TypeError, match="Data"):
        AddRandomWalkPE(2)({"edge_index": path_graph(3)})
