// SweepSvg: a hand-written SVG (no plotting library): two line charts side by side.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>

#include "bench/driver/report.h"

namespace strata::bench {
namespace {

constexpr double kPanelW = 440, kPanelH = 320;
constexpr double kLeft = 70, kTop = 60, kGap = 110, kBottom = 70;

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Num(double v) {
  char buf[32];
  if (v != 0 && (std::fabs(v) >= 1e6 || std::fabs(v) < 1e-3)) {
    std::snprintf(buf, sizeof(buf), "%.3g", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.6g", v);
  }
  return buf;
}

std::string Px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

// A "nice" tick step (1, 2 or 5 times a power of ten) giving about 5 ticks over `range`.
double NiceStep(double range) {
  if (!(range > 0)) return 1;
  double raw = range / 5;
  double mag = std::pow(10, std::floor(std::log10(raw)));
  double f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

struct Panel {
  double x0, y0;  // top-left of the plot area
  std::string x_title, y_title, title;
  double slo = 0;  // 0 = none
  std::function<double(const Summary&)> y_of;
};

void DrawPanel(std::ostringstream& out, const Panel& panel, const std::vector<SweepPoint>& pts) {
  double max_x = 0, max_y = panel.slo;
  for (const auto& p : pts) {
    max_x = std::max(max_x, p.summary.output_throughput);
    max_y = std::max(max_y, panel.y_of(p.summary));
  }
  double step_x = NiceStep(max_x * 1.05), step_y = NiceStep(max_y * 1.1);
  double hi_x = std::max(step_x, std::ceil(max_x * 1.05 / step_x) * step_x);
  double hi_y = std::max(step_y, std::ceil(max_y * 1.1 / step_y) * step_y);
  auto sx = [&](double x) { return panel.x0 + x / hi_x * kPanelW; };
  auto sy = [&](double y) { return panel.y0 + kPanelH - y / hi_y * kPanelH; };

  out << "<g class=\"panel\">\n";
  out << "<text x=\"" << Px(panel.x0 + kPanelW / 2) << "\" y=\"" << Px(panel.y0 - 14)
      << "\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">" << Escape(panel.title)
      << "</text>\n";
  // Grid and ticks.
  for (double v = 0; v <= hi_x + step_x / 2; v += step_x) {
    out << "<line x1=\"" << Px(sx(v)) << "\" y1=\"" << Px(panel.y0) << "\" x2=\"" << Px(sx(v))
        << "\" y2=\"" << Px(panel.y0 + kPanelH) << "\" stroke=\"#e5e5e5\"/>\n";
    out << "<text x=\"" << Px(sx(v)) << "\" y=\"" << Px(panel.y0 + kPanelH + 16)
        << "\" text-anchor=\"middle\" font-size=\"11\">" << Num(v) << "</text>\n";
  }
  for (double v = 0; v <= hi_y + step_y / 2; v += step_y) {
    out << "<line x1=\"" << Px(panel.x0) << "\" y1=\"" << Px(sy(v)) << "\" x2=\""
        << Px(panel.x0 + kPanelW) << "\" y2=\"" << Px(sy(v)) << "\" stroke=\"#e5e5e5\"/>\n";
    out << "<text x=\"" << Px(panel.x0 - 6) << "\" y=\"" << Px(sy(v) + 4)
        << "\" text-anchor=\"end\" font-size=\"11\">" << Num(v) << "</text>\n";
  }
  out << "<rect x=\"" << Px(panel.x0) << "\" y=\"" << Px(panel.y0) << "\" width=\"" << Px(kPanelW)
      << "\" height=\"" << Px(kPanelH) << "\" fill=\"none\" stroke=\"#333\"/>\n";
  out << "<text x=\"" << Px(panel.x0 + kPanelW / 2) << "\" y=\"" << Px(panel.y0 + kPanelH + 40)
      << "\" text-anchor=\"middle\" font-size=\"12\">" << Escape(panel.x_title) << "</text>\n";
  double yt_x = panel.x0 - 52, yt_y = panel.y0 + kPanelH / 2;
  out << "<text x=\"" << Px(yt_x) << "\" y=\"" << Px(yt_y) << "\" text-anchor=\"middle\" "
      << "font-size=\"12\" transform=\"rotate(-90 " << Px(yt_x) << " " << Px(yt_y) << ")\">"
      << Escape(panel.y_title) << "</text>\n";
  // SLO line.
  if (panel.slo > 0) {
    out << "<line class=\"slo\" x1=\"" << Px(panel.x0) << "\" y1=\"" << Px(sy(panel.slo))
        << "\" x2=\"" << Px(panel.x0 + kPanelW) << "\" y2=\"" << Px(sy(panel.slo))
        << "\" stroke=\"#d62728\" stroke-dasharray=\"6,4\"/>\n";
    out << "<text x=\"" << Px(panel.x0 + kPanelW - 4) << "\" y=\"" << Px(sy(panel.slo) - 5)
        << "\" text-anchor=\"end\" font-size=\"11\" fill=\"#d62728\">SLO " << Num(panel.slo)
        << " ms</text>\n";
  }
  // The curve, its points and their labels.
  if (!pts.empty()) {
    out << "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"";
    for (const auto& p : pts) {
      out << Px(sx(p.summary.output_throughput)) << "," << Px(sy(panel.y_of(p.summary))) << " ";
    }
    out << "\"/>\n";
  }
  bool crossed = false;
  for (const auto& p : pts) {
    double x = sx(p.summary.output_throughput), y = sy(panel.y_of(p.summary));
    bool first_past = panel.slo > 0 && !crossed && panel.y_of(p.summary) > panel.slo;
    crossed = crossed || first_past;
    out << "<circle class=\"point\" cx=\"" << Px(x) << "\" cy=\"" << Px(y) << "\" r=\""
        << (first_past ? "6" : "4") << "\" fill=\"" << (first_past ? "#d62728" : "#1f77b4")
        << "\"/>\n";
    out << "<text x=\"" << Px(x + 7) << "\" y=\"" << Px(y - 7) << "\" font-size=\"10\">"
        << Escape(p.point.label) << "</text>\n";
    if (first_past) {
      out << "<text class=\"slo-crossed\" x=\"" << Px(panel.x0 + 6) << "\" y=\""
          << Px(panel.y0 + 16) << "\" font-size=\"11\" fill=\"#d62728\">SLO crossed at "
          << Escape(p.point.label) << "</text>\n";
    }
  }
  out << "</g>\n";
}

}  // namespace

std::string SweepSvg(const std::vector<SweepPoint>& points, const Slo& slo,
                     const std::string& title) {
  double width = kLeft + 2 * kPanelW + kGap + 30;
  double height = kTop + kPanelH + kBottom;
  std::ostringstream out;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << Px(width) << "\" height=\""
      << Px(height) << "\" viewBox=\"0 0 " << Px(width) << " " << Px(height)
      << "\" font-family=\"sans-serif\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << Px(width / 2) << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
      << Escape(title) << "</text>\n";
  Panel ttft{kLeft,
             kTop,
             "output throughput (tok/s)",
             "p99 TTFT (ms)",
             "p99 TTFT vs throughput",
             slo.ttft_ms,
             [](const Summary& s) { return s.ttft_ms.p99; }};
  Panel tpot{kLeft + kPanelW + kGap,
             kTop,
             "output throughput (tok/s)",
             "p99 TPOT (ms)",
             "p99 TPOT vs throughput",
             slo.tpot_ms,
             [](const Summary& s) { return s.tpot_ms.p99; }};
  DrawPanel(out, ttft, points);
  DrawPanel(out, tpot, points);
  out << "</svg>\n";
  return out.str();
}

}  // namespace strata::bench
