using System.Globalization;
using System.Net;
using System.Text;

namespace Mobility.Bench.Gns;

/// <summary>One line of a chart panel: a name for the legend, a colour, and (x, y) points in data units.</summary>
public sealed record ChartSeries(string Name, string Colour, IReadOnlyList<(double X, double Y)> Points);

/// <summary>
/// One panel: a y-axis label and its lines; panels of one chart share the x axis. A logarithmic panel
/// (decades from the smallest positive value) keeps a p50 of 1 ms readable next to a p99 of seconds.
/// </summary>
public sealed record ChartPanel(string YLabel, IReadOnlyList<ChartSeries> Series, bool Logarithmic = false);

/// <summary>
/// A small, dependency-free SVG line-chart writer: panels stacked vertically over one x axis, each with
/// its own y range (from 0 to a "nice" maximum), grid lines, tick labels and a legend. Enough for a
/// soak's time series in docs/benchmarks; not a plotting library.
/// </summary>
public static class SvgChart
{
    private const int Width = 900;
    private const int PanelHeight = 170;
    private const int Left = 70;
    private const int Right = 20;
    private const int Top = 40;
    private const int Gap = 30;
    private const int Bottom = 45;
    private const int YTicks = 4;

    public static string Render(string title, string xLabel, IReadOnlyList<ChartPanel> panels)
    {
        ArgumentNullException.ThrowIfNull(panels);
        var xs = panels.SelectMany(p => p.Series).SelectMany(s => s.Points).Select(p => p.X).ToArray();
        var xMin = xs.Length > 0 ? xs.Min() : 0;
        var xMax = xs.Length > 0 ? Math.Max(xs.Max(), xMin + 1) : 1;
        var plotWidth = Width - Left - Right;
        var height = Top + (panels.Count * PanelHeight) + ((panels.Count - 1) * Gap) + Bottom;
        var svg = new StringBuilder();
        svg.Append(Inv($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{height}\" viewBox=\"0 0 {Width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n"));
        svg.Append(Inv($"<rect width=\"{Width}\" height=\"{height}\" fill=\"white\"/>\n"));
        svg.Append(Inv($"<text x=\"{Width / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{Escape(title)}</text>\n"));

        for (var index = 0; index < panels.Count; index++)
        {
            var panel = panels[index];
            var top = Top + (index * (PanelHeight + Gap));
            var ys = panel.Series.SelectMany(s => s.Points).Select(p => p.Y).Where(double.IsFinite).ToArray();
            var yMax = NiceCeiling(ys.Length > 0 ? ys.Max() : 1);
            var positive = ys.Where(y => y > 0).ToArray();
            var logMin = Math.Pow(10, Math.Floor(Math.Log10(positive.Length > 0 ? positive.Min() : 1)));
            var logMax = Math.Pow(10, Math.Ceiling(Math.Log10(Math.Max(yMax, logMin * 10))));
            double X(double x) => Left + ((x - xMin) / (xMax - xMin) * plotWidth);
            double Y(double y) => panel.Logarithmic
                ? top + PanelHeight - ((Math.Log10(Math.Clamp(y, logMin, logMax)) - Math.Log10(logMin)) / (Math.Log10(logMax) - Math.Log10(logMin)) * PanelHeight)
                : top + PanelHeight - (Math.Clamp(y, 0, yMax) / yMax * PanelHeight);
            var ticks = panel.Logarithmic
                ? Enumerable.Range(0, (int)Math.Round(Math.Log10(logMax / logMin)) + 1).Select(d => logMin * Math.Pow(10, d)).ToArray()
                : Enumerable.Range(0, YTicks + 1).Select(t => yMax * t / YTicks).ToArray();

            svg.Append(Inv($"<rect x=\"{Left}\" y=\"{top}\" width=\"{plotWidth}\" height=\"{PanelHeight}\" fill=\"none\" stroke=\"#999\"/>\n"));
            foreach (var value in ticks)
            {
                var y = Y(value);
                svg.Append(Inv($"<line x1=\"{Left}\" y1=\"{y:F1}\" x2=\"{Left + plotWidth}\" y2=\"{y:F1}\" stroke=\"#e5e5e5\"/>\n"));
                svg.Append(Inv($"<text x=\"{Left - 6}\" y=\"{y + 4:F1}\" text-anchor=\"end\">{Format(value)}</text>\n"));
            }

            svg.Append(Inv($"<text transform=\"translate(16,{top + (PanelHeight / 2)}) rotate(-90)\" text-anchor=\"middle\">{Escape(panel.YLabel)}</text>\n"));
            var legendX = Left + 8;
            foreach (var series in panel.Series)
            {
                var points = series.Points.Where(p => double.IsFinite(p.Y)).Select(p => Inv($"{X(p.X):F1},{Y(p.Y):F1}"));
                svg.Append(Inv($"<polyline fill=\"none\" stroke=\"{series.Colour}\" stroke-width=\"1.5\" points=\"{string.Join(' ', points)}\"/>\n"));
                svg.Append(Inv($"<line x1=\"{legendX}\" y1=\"{top + 12}\" x2=\"{legendX + 18}\" y2=\"{top + 12}\" stroke=\"{series.Colour}\" stroke-width=\"2\"/>\n"));
                svg.Append(Inv($"<text x=\"{legendX + 22}\" y=\"{top + 16}\">{Escape(series.Name)}</text>\n"));
                legendX += 30 + (7 * series.Name.Length);
            }
        }

        var axisY = Top + (panels.Count * PanelHeight) + ((panels.Count - 1) * Gap);
        for (var t = 0; t <= 10; t++)
        {
            var value = xMin + ((xMax - xMin) * t / 10);
            var x = Left + (plotWidth * t / 10.0);
            svg.Append(Inv($"<text x=\"{x:F1}\" y=\"{axisY + 15}\" text-anchor=\"middle\">{Format(value)}</text>\n"));
        }

        svg.Append(Inv($"<text x=\"{Left + (plotWidth / 2)}\" y=\"{axisY + 35}\" text-anchor=\"middle\">{Escape(xLabel)}</text>\n"));
        svg.Append("</svg>\n");
        return svg.ToString();
    }

    /// <summary>The smallest 1, 2 or 5 times a power of ten that is at least <paramref name="value"/> (1 for 0).</summary>
    public static double NiceCeiling(double value)
    {
        if (!(value > 0))
        {
            return 1;
        }

        var magnitude = Math.Pow(10, Math.Floor(Math.Log10(value)));
        foreach (var step in (ReadOnlySpan<double>)[1, 2, 5, 10])
        {
            if (step * magnitude >= value)
            {
                return step * magnitude;
            }
        }

        return 10 * magnitude;
    }

    private static string Format(double value)
        => value >= 100 || value == Math.Floor(value) ? value.ToString("0", CultureInfo.InvariantCulture) : value.ToString("0.###", CultureInfo.InvariantCulture);

    private static string Escape(string text) => WebUtility.HtmlEncode(text);

    private static string Inv(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
