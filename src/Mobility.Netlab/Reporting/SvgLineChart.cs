using System.Globalization;
using System.Security;
using System.Text;

namespace Mobility.Netlab.Reporting;

/// <summary>One line of a chart: a label and its points (x ascending).</summary>
public sealed record ChartSeries(string Label, IReadOnlyList<(double X, double Y)> Points);

/// <summary>A vertical marker (e.g. the move) with a label.</summary>
public sealed record ChartMarker(double X, string Label);

/// <summary>
/// A minimal SVG line chart (no plotting package is available offline): axes with ticks, one polyline per series, a
/// legend, and vertical markers. Pure string building, unit-testable.
/// </summary>
public sealed class SvgLineChart
{
    private static readonly string[] Colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

    public string Title { get; init; } = "";

    public string XLabel { get; init; } = "";

    public string YLabel { get; init; } = "";

    /// <summary>Fixed top of the y axis; larger values are drawn clipped at the top edge. Null: fit the data.</summary>
    public double? YMax { get; init; }

    public int Width { get; init; } = 800;

    public int Height { get; init; } = 400;

    public List<ChartSeries> Series { get; } = [];

    public List<ChartMarker> Markers { get; } = [];

    public string Render()
    {
        const double left = 70, right = 20, top = 40, bottom = 50;
        var points = Series.SelectMany(s => s.Points).ToList();
        var xMin = points.Count == 0 ? 0 : Math.Min(points.Min(p => p.X), Markers.Count == 0 ? double.MaxValue : Markers.Min(m => m.X));
        var xMax = points.Count == 0 ? 1 : Math.Max(points.Max(p => p.X), Markers.Count == 0 ? double.MinValue : Markers.Max(m => m.X));
        var yMax = YMax ?? (points.Count == 0 ? 1 : NiceCeiling(points.Max(p => p.Y)));
        if (xMax <= xMin)
        {
            xMax = xMin + 1;
        }

        var plotW = Width - left - right;
        var plotH = Height - top - bottom;
        double X(double x) => left + ((x - xMin) / (xMax - xMin) * plotW);
        double Y(double y) => top + plotH - (Math.Min(y, yMax) / yMax * plotH);

        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        svg.Append(CultureInfo.InvariantCulture, $"<rect width=\"{Width}\" height=\"{Height}\" fill=\"white\"/>\n");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Width / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{Escape(Title)}</text>\n");

        // Grid and ticks.
        for (var i = 0; i <= 5; i++)
        {
            var v = yMax * i / 5;
            var y = Y(v);
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{F(left)}\" y1=\"{F(y)}\" x2=\"{F(left + plotW)}\" y2=\"{F(y)}\" stroke=\"#ddd\"/>\n");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(left - 6)}\" y=\"{F(y + 4)}\" text-anchor=\"end\">{v.ToString("0.##", CultureInfo.InvariantCulture)}</text>\n");
        }

        var step = NiceStep((xMax - xMin) / 8);
        for (var v = Math.Ceiling(xMin / step) * step; v <= xMax + (step / 1000); v += step)
        {
            var x = X(v);
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{F(x)}\" y1=\"{F(top + plotH)}\" x2=\"{F(x)}\" y2=\"{F(top + plotH + 5)}\" stroke=\"black\"/>\n");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(x)}\" y=\"{F(top + plotH + 18)}\" text-anchor=\"middle\">{Math.Round(v, 6).ToString("0.##", CultureInfo.InvariantCulture)}</text>\n");
        }

        svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(left)}\" y=\"{F(top)}\" width=\"{F(plotW)}\" height=\"{F(plotH)}\" fill=\"none\" stroke=\"black\"/>\n");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(left + (plotW / 2))}\" y=\"{Height - 10}\" text-anchor=\"middle\">{Escape(XLabel)}</text>\n");
        svg.Append(CultureInfo.InvariantCulture, $"<text transform=\"translate(16 {F(top + (plotH / 2))}) rotate(-90)\" text-anchor=\"middle\">{Escape(YLabel)}</text>\n");

        foreach (var marker in Markers)
        {
            var x = X(marker.X);
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{F(x)}\" y1=\"{F(top)}\" x2=\"{F(x)}\" y2=\"{F(top + plotH)}\" stroke=\"black\" stroke-dasharray=\"4 3\"/>\n");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(x + 4)}\" y=\"{F(top + 12)}\">{Escape(marker.Label)}</text>\n");
        }

        for (var i = 0; i < Series.Count; i++)
        {
            var color = Colors[i % Colors.Length];
            var path = string.Join(' ', Series[i].Points.Select(p => $"{F(X(p.X))},{F(Y(p.Y))}"));
            svg.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{path}\"/>\n");
            var ly = top + 14 + (i * 16);
            var lx = left + plotW - 150;
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{F(lx)}\" y1=\"{F(ly - 4)}\" x2=\"{F(lx + 20)}\" y2=\"{F(ly - 4)}\" stroke=\"{color}\" stroke-width=\"2\"/>\n");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(lx + 26)}\" y=\"{F(ly)}\">{Escape(Series[i].Label)}</text>\n");
        }

        svg.Append("</svg>\n");
        return svg.ToString();
    }

    internal static double NiceCeiling(double value)
    {
        if (value <= 0)
        {
            return 1;
        }

        var magnitude = Math.Pow(10, Math.Floor(Math.Log10(value)));
        foreach (var m in new[] { 1, 2, 2.5, 5, 10 })
        {
            if (m * magnitude >= value)
            {
                return m * magnitude;
            }
        }

        return 10 * magnitude;
    }

    private static double NiceStep(double raw) => NiceCeiling(raw);

    private static string F(double value) => value.ToString("0.#", CultureInfo.InvariantCulture);

    private static string Escape(string text) => SecurityElement.Escape(text) ?? "";
}
