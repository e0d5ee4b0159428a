// Hand-written SVG line chart of accuracy (%) against degradation factor, like the paper's figures 6-9.

import Foundation

extension EvaluationReport {
    /// Colours (matplotlib's tab10) and marker shapes cycled over the models.
    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    /// An SVG 1.1 document: accuracy (%) against degradation factor for every model of `dataset`; one
    /// `<polyline>` per model (points sorted by factor), a marker per point (shape and colour per model), a legend,
    /// axes with ticks, grid lines and labels. The x axis is logarithmic in the factor (x1, x2, x4, x8 equally
    /// spaced); the y axis spans the data, rounded out to whole ticks, capped at 0 and 100.
    /// Every character of a model or data-set name is XML-escaped.
    public func svgChart(dataset: String) -> String {
        let models = models(in: dataset)
        // The legend column widens with the longest name (about 7 px a character at font-size 12).
        let legendWidth = max(220.0, 70.0 + 7.0 * Double(models.map(\.count).max() ?? 0))
        let width = 540.0 + legendWidth, height = 460.0
        let left = 72.0, right = width - legendWidth, top = 58.0, bottom = height - 62.0
        let factors = factors(in: dataset)
        let rows = results.filter { $0.dataset == dataset }

        // x: log2(factor), padded by a quarter step each side.
        let logs = factors.map { log2(Double(max($0, 1))) }
        let (xMin, xMax): (Double, Double) = {
            guard let lo = logs.min(), let hi = logs.max(), hi > lo else { return ((logs.first ?? 0) - 1, (logs.first ?? 0) + 1) }
            let pad = (hi - lo) / Double(max(factors.count - 1, 1)) * 0.25
            return (lo - pad, hi + pad)
        }()
        func px(_ factor: Int) -> Double { left + (log2(Double(max(factor, 1))) - xMin) / (xMax - xMin) * (right - left) }

        // y: percent, nice step.
        // Rows aggregated over seeds carry their seed spread: the axis spans mean +- that std.
        let lows = rows.map { ($0.accuracy - ($0.seedStd ?? 0)) * 100 }, highs = rows.map { ($0.accuracy + ($0.seedStd ?? 0)) * 100 }
        let dataLo = lows.min() ?? 0, dataHi = highs.max() ?? 100
        let span = max(dataHi - dataLo, 1)
        let step = [1.0, 2.0, 5.0, 10.0, 20.0].first { span / $0 <= 8 } ?? 20
        var yLo = max(0, (floor(dataLo / step) - (dataLo.truncatingRemainder(dividingBy: step) == 0 ? 1 : 0)) * step)
        var yHi = min(100, (floor(dataHi / step) + 1) * step)
        if yHi <= yLo { yLo = max(0, yHi - step); if yHi <= yLo { yHi = yLo + step } }
        func py(_ pct: Double) -> Double { bottom - (pct - yLo) / (yHi - yLo) * (bottom - top) }

        var s = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(f(width))" height="\(f(height))" \
        viewBox="0 0 \(f(width)) \(f(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">

        """
        s += "<title>\(xml(dataset)): verification accuracy vs. degradation factor</title>\n"
        s += "<rect x=\"0\" y=\"0\" width=\"\(f(width))\" height=\"\(f(height))\" fill=\"white\"/>\n"
        s += "<text x=\"\(f((left + right) / 2))\" y=\"26\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\">"
            + "\(xml(dataset)): accuracy vs. degradation</text>\n"
        s += "<text x=\"\(f((left + right) / 2))\" y=\"44\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555555\">"
            + "\(xml(uniqueInOrder(rows.map(\.protocolName)).joined(separator: "; ")))</text>\n"

        // Grid, ticks and tick labels.
        s += "<g class=\"grid\" stroke=\"#dddddd\" stroke-width=\"1\">\n"
        var ticks: [Double] = []
        var v = yLo
        while v <= yHi + 1e-9 { ticks.append(v); v += step }
        for t in ticks { s += "<line x1=\"\(f(left))\" y1=\"\(f(py(t)))\" x2=\"\(f(right))\" y2=\"\(f(py(t)))\"/>\n" }
        for fac in factors { s += "<line x1=\"\(f(px(fac)))\" y1=\"\(f(top))\" x2=\"\(f(px(fac)))\" y2=\"\(f(bottom))\"/>\n" }
        s += "</g>\n"
        s += "<g class=\"axes\" stroke=\"black\" stroke-width=\"1.2\">\n"
        s += "<line x1=\"\(f(left))\" y1=\"\(f(bottom))\" x2=\"\(f(right))\" y2=\"\(f(bottom))\"/>\n"
        s += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(bottom))\"/>\n"
        for t in ticks { s += "<line x1=\"\(f(left - 5))\" y1=\"\(f(py(t)))\" x2=\"\(f(left))\" y2=\"\(f(py(t)))\"/>\n" }
        for fac in factors { s += "<line x1=\"\(f(px(fac)))\" y1=\"\(f(bottom))\" x2=\"\(f(px(fac)))\" y2=\"\(f(bottom + 5))\"/>\n" }
        s += "</g>\n"
        s += "<g class=\"tick-labels\" font-size=\"12\">\n"
        for t in ticks {
            s += "<text x=\"\(f(left - 8))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(String(format: "%g", t))</text>\n"
        }
        for fac in factors {
            s += "<text x=\"\(f(px(fac)))\" y=\"\(f(bottom + 20))\" text-anchor=\"middle\">x\(fac)</text>\n"
        }
        s += "</g>\n"
        s += "<text x=\"\(f((left + right) / 2))\" y=\"\(f(height - 18))\" text-anchor=\"middle\" font-size=\"13\">"
            + "Degradation factor (down-sampling)</text>\n"
        s += "<text transform=\"translate(20 \(f((top + bottom) / 2))) rotate(-90)\" text-anchor=\"middle\" "
            + "font-size=\"13\">Verification accuracy (%)</text>\n"

        // Series and legend.
        for (i, model) in models.enumerated() {
            let color = Self.palette[i % Self.palette.count]
            let points = rows.filter { $0.model == model }
                .sorted { $0.degradationFactor < $1.degradationFactor }
                .map { (px($0.degradationFactor), py($0.accuracy * 100)) }
            s += "<g class=\"series\" data-model=\"\(xml(model))\">\n"
            s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\""
                + points.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " ") + "\"/>\n"
            for r in rows where r.model == model {
                guard let sd = r.seedStd, sd > 0 else { continue }
                let x = px(r.degradationFactor) + Double(i - models.count / 2) * 3   // dodge overlapping bars
                let y0 = py((r.accuracy - sd) * 100), y1 = py((r.accuracy + sd) * 100)
                s += "<g class=\"error-bar\" stroke=\"\(color)\" stroke-width=\"1.5\">"
                    + "<line x1=\"\(f(x))\" y1=\"\(f(y0))\" x2=\"\(f(x))\" y2=\"\(f(y1))\"/>"
                    + "<line x1=\"\(f(x - 4))\" y1=\"\(f(y0))\" x2=\"\(f(x + 4))\" y2=\"\(f(y0))\"/>"
                    + "<line x1=\"\(f(x - 4))\" y1=\"\(f(y1))\" x2=\"\(f(x + 4))\" y2=\"\(f(y1))\"/></g>\n"
            }
            for (x, y) in points { s += marker(i, x, y, color) }
            s += "</g>\n"
            let ly = top + 12 + Double(i) * 22
            s += "<g class=\"legend-entry\">\n"
            s += "<line x1=\"\(f(right + 18))\" y1=\"\(f(ly))\" x2=\"\(f(right + 46))\" y2=\"\(f(ly))\" "
                + "stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            s += marker(i, right + 32, ly, color)
            s += "<text x=\"\(f(right + 54))\" y=\"\(f(ly + 4))\" font-size=\"12\">\(xml(model))</text>\n"
            s += "</g>\n"
        }
        s += "</svg>\n"
        return s
    }

    /// Marker `i % 4`: circle, square, triangle, diamond, centred at (x, y).
    func marker(_ i: Int, _ x: Double, _ y: Double, _ color: String) -> String {
        let r = 4.5
        switch i % 4 {
        case 0:
            return "<circle cx=\"\(f(x))\" cy=\"\(f(y))\" r=\"\(f(r))\" fill=\"\(color)\"/>\n"
        case 1:
            return "<rect x=\"\(f(x - r))\" y=\"\(f(y - r))\" width=\"\(f(2 * r))\" height=\"\(f(2 * r))\" fill=\"\(color)\"/>\n"
        case 2:
            return "<polygon points=\"\(f(x)),\(f(y - r - 1)) \(f(x + r + 1)),\(f(y + r)) \(f(x - r - 1)),\(f(y + r))\" fill=\"\(color)\"/>\n"
        default:
            return "<polygon points=\"\(f(x)),\(f(y - r - 1)) \(f(x + r + 1)),\(f(y)) \(f(x)),\(f(y + r + 1)) \(f(x - r - 1)),\(f(y))\" fill=\"\(color)\"/>\n"
        }
    }
}

/// A coordinate with 2 decimals.
private func f(_ v: Double) -> String { String(format: "%.2f", v) }

/// XML text/attribute escaping.
func xml(_ s: String) -> String {
    var out = ""
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default: out.append(c)
        }
    }
    return out
}
