using System.Globalization;
using System.Security;
using System.Text;

namespace Mobility.Netlab.Reporting;

/// <summary>One line of a chart: a label for the legend, its points (x ascending) and a colour (null: the next of the palette).</summary>
public sealed record ChartSeries(string Label, IReadOnlyList<(double X, double Y)> Points, string? Colour = null);

/// <summary>A vertical marker across every panel (e.g. the move) with a label.</summary>
public sealed record ChartMarker(double X, string Label);

/// <summary>
/// One panel: a y-axis label and its lines; the panels of a chart share the x axis. The y axis runs from 0
/// to <see cref="YMax"/> (larger values are drawn clipped at the top) or to a "nice" ceiling of the data; a
/// logarithmic panel (decades from the smallest positive value) keeps a p50 of 1 ms readable next to a p99 of seconds.
/// </summary>
public sealed record ChartPanel(string YLabel, IReadOnlyList<ChartSeries> Series, bool Logarithmic = false, double? YMax = null);

/// <summary>
/// The one SVG line-chart writer of the repository (the netlab's throughput plots, gns-bench's soak charts):
/// panels stacked over one x axis, grid lines, tick labels, a legend per panel and vertical markers. Pure
/// string building with no plotting package, unit-testable; text is escaped.
/// </summary>
public sealed class SvgChart
{
    private const int YTicks = 5;

    /// <summary>Room around the plot areas: tick labels left and below, the title above, and between two panels.</summary>
    private static readonly (double Left, double Right, double Top, double Bottom, double Gap) Inset = (70, 20, 40, 50, 30);
    private static readonly string[] Palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

    public string Title { get; init; } = "";

    public string XLabel { get; init; } = "";

    /// <summary>The y label of the single panel made of <see cref="Series"/> (when <see cref="Panels"/> is empty).</summary>
    public string YLabel { get; init; } = "";

    /// <summary>The fixed top of the single panel's y axis; null: fit the data.</summary>
    public double? YMax { get; init; }

    public int Width { get; init; } = 800;

    /// <summary>The height of each panel's plot area (a single-panel chart is 400 high).</summary>
    public int PanelHeight { get; init; } = 310;

    /// <summary>The lines of the single panel (when <see cref="Panels"/> is empty).</summary>
    public List<ChartSeries> Series { get; } = [];

    /// <summary>Stacked panels; when empty, one panel of <see cref="Series"/>.</summary>
    public List<ChartPanel> Panels { get; } = [];

    public List<ChartMarker> Markers { get; } = [];

    /// <summary>A chart of stacked panels, 900 wide with 170 per panel (gns-bench's soak charts).</summary>
    public static string Render(string title, string xLabel, IReadOnlyList<ChartPanel> panels)
    {
        ArgumentNullException.ThrowIfNull(panels);
        var chart = new SvgChart { Title = title, XLabel = xLabel, Width = 900, PanelHeight = 170 };
        chart.Panels.AddRange(panels);
        return chart.Render();
    }

    public string Render()
    {
        IReadOnlyList<ChartPanel> panels = Panels.Count > 0 ? Panels : [new ChartPanel(YLabel, Series, YMax: YMax)];
        var xs = panels.SelectMany(p => p.Series).SelectMany(s => s.Points).Select(p => p.X).Concat(Markers.Select(m => m.X)).ToArray();
        var xMin = xs.Length > 0 ? xs.Min() : 0;
        var xMax = xs.Length > 0 ? xs.Max() : 1;
        if (xMax <= xMin)
        {
            xMax = xMin + 1;
        }

        var plotW = Width - Inset.Left - Inset.Right;
        var plotBottom = Inset.Top + (panels.Count * PanelHeight) + ((panels.Count - 1) * Inset.Gap);
        var height = plotBottom + Inset.Bottom;
        double X(double x) => Inset.Left + ((x - xMin) / (xMax - xMin) * plotW);

        var svg = new StringBuilder();
        svg.Append(Inv($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{F(height)}\" viewBox=\"0 0 {Width} {F(height)}\" font-family=\"sans-serif\" font-size=\"12\">\n"));
        svg.Append(Inv($"<rect width=\"{Width}\" height=\"{F(height)}\" fill=\"white\"/>\n"));
        svg.Append(Inv($"<text x=\"{Width / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{Escape(Title)}</text>\n"));

        for (var index = 0; index < panels.Count; index++)
        {
            RenderPanel(svg, panels[index], Inset.Top + (index * (PanelHeight + Inset.Gap)), plotW, X);
        }

        var step = NiceCeiling((xMax - xMin) / 8);
        for (var v = Math.Ceiling(xMin / step) * step; v <= xMax + (step / 1000); v += step)
        {
            var x = X(v);
            svg.Append(Inv($"<line x1=\"{F(x)}\" y1=\"{F(plotBottom)}\" x2=\"{F(x)}\" y2=\"{F(plotBottom + 5)}\" stroke=\"black\"/>\n"));
            svg.Append(Inv($"<text x=\"{F(x)}\" y=\"{F(plotBottom + 18)}\" text-anchor=\"middle\">{Format(Math.Round(v, 6))}</text>\n"));
        }

        svg.Append(Inv($"<text x=\"{F(Inset.Left + (plotW / 2))}\" y=\"{F(height - 10)}\" text-anchor=\"middle\">{Escape(XLabel)}</text>\n"));
        foreach (var marker in Markers)
        {
            var x = X(marker.X);
            svg.Append(Inv($"<line x1=\"{F(x)}\" y1=\"{F(Inset.Top)}\" x2=\"{F(x)}\" y2=\"{F(plotBottom)}\" stroke=\"black\" stroke-dasharray=\"4 3\"/>\n"));
            svg.Append(Inv($"<text x=\"{F(x + 4)}\" y=\"{F(Inset.Top + 12)}\">{Escape(marker.Label)}</text>\n"));
        }

        svg.Append("</svg>\n");
        return svg.ToString();
    }

    /// <summary>The smallest 1, 2, 2.5 or 5 times a power of ten that is at least <paramref name="value"/> (1 for 0 or less).</summary>
    public static double NiceCeiling(double value)
    {
        if (!(value > 0))
        {
            return 1;
        }

        var magnitude = Math.Pow(10, Math.Floor(Math.Log10(value)));
        foreach (var step in (ReadOnlySpan<double>)[1, 2, 2.5, 5, 10])
        {
            if (step * magnitude >= value)
            {
                return step * magnitude;
            }
        }

        return 10 * magnitude;
    }

    private void RenderPanel(StringBuilder svg, ChartPanel panel, double top, double plotW, Func<double, double> x)
    {
        var ys = panel.Series.SelectMany(s => s.Points).Select(p => p.Y).Where(double.IsFinite).ToArray();
        var yMax = panel.YMax ?? NiceCeiling(ys.Length > 0 ? ys.Max() : 1);
        var positive = ys.Where(y => y > 0).ToArray();
        var logMin = Math.Pow(10, Math.Floor(Math.Log10(positive.Length > 0 ? positive.Min() : 1)));
        var logMax = Math.Pow(10, Math.Ceiling(Math.Log10(Math.Max(yMax, logMin * 10))));
        double Y(double y) => panel.Logarithmic
            ? top + PanelHeight - ((Math.Log10(Math.Clamp(y, logMin, logMax)) - Math.Log10(logMin)) / (Math.Log10(logMax) - Math.Log10(logMin)) * PanelHeight)
            : top + PanelHeight - (Math.Clamp(y, 0, yMax) / yMax * PanelHeight);
        var ticks = panel.Logarithmic
            ? Enumerable.Range(0, (int)Math.Round(Math.Log10(logMax / logMin)) + 1).Select(d => logMin * Math.Pow(10, d)).ToArray()
            : Enumerable.Range(0, YTicks + 1).Select(t => yMax * t / YTicks).ToArray();

        foreach (var value in ticks)
        {
            var y = Y(value);
            svg.Append(Inv($"<line x1=\"{F(Inset.Left)}\" y1=\"{F(y)}\" x2=\"{F(Inset.Left + plotW)}\" y2=\"{F(y)}\" stroke=\"#ddd\"/>\n"));
            svg.Append(Inv($"<text x=\"{F(Inset.Left - 6)}\" y=\"{F(y + 4)}\" text-anchor=\"end\">{Format(value)}</text>\n"));
        }

        svg.Append(Inv($"<rect x=\"{F(Inset.Left)}\" y=\"{F(top)}\" width=\"{F(plotW)}\" height=\"{PanelHeight}\" fill=\"none\" stroke=\"black\"/>\n"));
        svg.Append(Inv($"<text transform=\"translate(16 {F(top + (PanelHeight / 2.0))}) rotate(-90)\" text-anchor=\"middle\">{Escape(panel.YLabel)}</text>\n"));
        for (var i = 0; i < panel.Series.Count; i++)
        {
            var series = panel.Series[i];
            var colour = series.Colour ?? Palette[i % Palette.Length];
            var points = string.Join(' ', series.Points.Where(p => double.IsFinite(p.Y)).Select(p => $"{F(x(p.X))},{F(Y(p.Y))}"));
            svg.Append(Inv($"<polyline fill=\"none\" stroke=\"{Escape(colour)}\" stroke-width=\"1.5\" points=\"{points}\"/>\n"));
            var ly = top + 14 + (i * 16);
            var lx = Inset.Left + plotW - 150;
            svg.Append(Inv($"<line x1=\"{F(lx)}\" y1=\"{F(ly - 4)}\" x2=\"{F(lx + 20)}\" y2=\"{F(ly - 4)}\" stroke=\"{Escape(colour)}\" stroke-width=\"2\"/>\n"));
            svg.Append(Inv($"<text x=\"{F(lx + 26)}\" y=\"{F(ly)}\">{Escape(series.Label)}</text>\n"));
        }
    }

    private static string Format(double value)
        => value >= 100 || value == Math.Floor(value) ? value.ToString("0", CultureInfo.InvariantCulture) : value.ToString("0.###", CultureInfo.InvariantCulture);

    private static string F(double value) => value.ToString("0.#", CultureInfo.InvariantCulture);

    private static string Escape(string text) => SecurityElement.Escape(text) ?? "";

    private static string Inv(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
