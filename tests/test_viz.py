"""Figures build without a display and carry what they claim."""

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from course_utils.course import viz  # noqa: E402


def test_grid_has_one_row_per_class_and_undoes_normalisation():
    images = torch.zeros(6, 1, 28, 28)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    fig = viz.show_grid(images, labels, class_names=["a", "b", "c"], mean=(0.5,), std=(0.25,), max_per_class=4)
    assert len(fig.axes) == 3 * 2  # 3 classes × 2 images (the most any class has)
    assert [ax.get_ylabel() for ax in fig.axes[::2]] == ["a", "b", "c"]
    assert torch.allclose(viz.to_pixels(images, (0.5,), (0.25,)), torch.full((6, 1, 28, 28), 0.5))


def test_curves_and_accuracy_plot():
    fig = viz.plot_curves({"loss": ([0, 1, 2], [3.0, 2.0, 1.0])}, xlabel="step", logy=True, title="t")
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_title() == "t"
    fig = viz.plot_accuracy_vs_ipc({"random": {1: (50.0, 1.0), 10: (80.0, 2.0)}}, reference={"full": 99.0})
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_ylabel() == "test accuracy (%)"
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "10"]  # the IPCs run, not powers of ten
    fig.canvas.draw()  # the reference's label sits inside the axes (it was drawn off them once the x scale was log)
    box, inside = ax.texts[0].get_window_extent(), ax.get_window_extent()
    assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 <= inside.y1


def test_plots_take_tensors_and_single_network_results():
    """Plot helpers take tensors (on any device: they move them to the CPU) and a std of None (one network)."""
    fig = viz.plot_curves({"loss": (torch.arange(3), torch.tensor([3.0, 2.0, 1.0]))})
    assert list(fig.axes[0].lines[0].get_ydata()) == [3.0, 2.0, 1.0]
    fig = viz.plot_curves({"loss": (range(2), [torch.tensor(1.5), torch.tensor(0.5)])})
    assert list(fig.axes[0].lines[0].get_ydata()) == [1.5, 0.5]
    viz.plot_accuracy_vs_ipc({"kip": {1: (93.0, None), 10: (torch.tensor(95.0), torch.tensor(0.5))}})
    labels = torch.tensor([1, 0])  # grids take images and labels on different devices: both move to the CPU
    assert len(viz.show_grid(torch.zeros(2, 1, 4, 4, dtype=torch.float64), labels).axes) == 2


def test_sets_side_by_side_one_panel_per_set_with_readable_class_names():
    images = torch.rand(6, 1, 4, 4)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    fig = viz.show_sets(
        {"a": (images, labels), "b": (images[::2], labels[::2])}, class_names=["x", "y", "z"], per_class=2
    )
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["x", "y", "z"]
    shown = fig.axes[0].get_images()[0].get_array()
    assert shown.shape == (3 * 6, 2 * 6, 3)  # 3 classes × 2 images, 4-pixel tiles padded by 2
    assert torch.allclose(torch.as_tensor(shown[6:10, 6:10, 0]), images[3, 0])  # class y's second image, in place


def test_heatmap_labels_every_cell_and_takes_tensors():
    values = torch.tensor([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]])
    fig = viz.plot_heatmap(values, ["r1", "r2"], ["a", "b", "c"], title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["10", "20", "30", "40", "50", "60"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"] and ax.get_title() == "t"
    fig = viz.plot_heatmap([[1.0, 2.0]], ["r"], ["a", "b"], fmt="{:.1f}")  # nested lists too
    assert [t.get_text() for t in fig.axes[0].texts] == ["1.0", "2.0"]
    import pytest

    with pytest.raises(ValueError, match="do not match 1 row and 3 column labels"):
        viz.plot_heatmap([[1.0, 2.0]], ["r"], ["a", "b", "c"])


def test_accuracy_vs_time_has_one_panel_per_ipc_and_the_random_subset_as_a_line():
    points = {"random": {1: (0.0, 50.0), 10: (torch.tensor(0.002), torch.tensor(80.0))}, "dm": {1: (12.0, 85.0)}}
    points["dc"] = {1: (30.0, 70.0), 10: (torch.tensor(90.0), torch.tensor(82.0))}
    fig = viz.plot_accuracy_vs_time(points, title="t")
    panels = fig.axes
    assert [ax.get_title() for ax in panels] == ["IPC 1", "IPC 10"]
    assert all(ax.get_xscale() == "log" for ax in panels) and panels[0].get_ylabel() == "test accuracy (%)"
    assert sorted(t.get_text() for t in panels[0].texts) == ["dc", "dm"]  # the method beside each point
    assert [t.get_text() for t in panels[1].texts] == ["dc"]
    lines = [line.get_ydata()[0] for line in panels[1].get_lines()]
    assert lines == [80.0]  # random is a horizontal line at its accuracy, at no invented time
    assert panels[0].collections[0].get_offsets().tolist() == [[12.0, 85.0], [30.0, 70.0]]
    import pytest

    with pytest.raises(ValueError, match="no points to plot"):
        viz.plot_accuracy_vs_time({})
