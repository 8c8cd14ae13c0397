/*
 * Copyright 2026 gr-shapft authors
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Written by hand (no BINDTOOL header hash): one function, numpy arrays out.
 */
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <gnuradio/shapft/frame_tags.h>
#include <memory>

namespace py = pybind11;

void bind_frame_tags(py::module& m)
{
    m.def(
        "read_frame_tags",
        [](const gr::basic_block_sptr& block,
           uint64_t first,
           uint64_t n,
           const std::string& label_key,
           const std::string& snr_key,
           const std::vector<std::string>& names) {
            auto running = std::dynamic_pointer_cast<gr::block>(block);
            if (!running) {
                throw std::invalid_argument("read_frame_tags: not a gr::block");
            }
            gr::shapft::frame_tags tags;
            {
                py::gil_scoped_release release; // other blocks' Python may run meanwhile
                tags = gr::shapft::read_frame_tags(running, first, n, label_key, snr_key, names);
            }
            return py::make_tuple(py::array_t<int64_t>(tags.labels.size(), tags.labels.data()),
                                  py::array_t<double>(tags.snrs.size(), tags.snrs.data()),
                                  tags.names);
        },
        py::arg("block"),
        py::arg("first"),
        py::arg("n"),
        py::arg("label_key"),
        py::arg("snr_key"),
        py::arg("names"),
        R"doc(Tags of n items on input 0 of a running block from its window's `first`
(nitems_read(0) + first; call from work()).

block: the block's basic block (a Python block's self.to_basic_block()).
Returns (labels, snrs, names): labels[i] is the index in names of the i-th item's
label_key tag value (-1 where untagged), snrs[i] its snr_key tag value (NaN where
untagged or not a real number); names is the names given followed by any other
label values seen, as text.)doc");
}
