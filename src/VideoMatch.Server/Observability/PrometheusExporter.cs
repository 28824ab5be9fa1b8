using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace VideoMatch.Server.Observability;

/// <summary>
/// Serves one <see cref="Meter"/>'s instruments in the Prometheus text format (0.0.4), with the process's CPU, memory
/// and GC figures. It listens to that meter alone, so servers hosted in one process (tests) never mix counts;
/// OpenTelemetry users collect the same instruments by the meter's name.
/// </summary>
/// <remarks>
/// Names follow OpenTelemetry's Prometheus mapping: dots become underscores, unit "s" adds <c>_seconds</c>, counters
/// add <c>_total</c> (so <c>videomatch.queue_wait</c> in seconds is <c>videomatch_queue_wait_seconds</c>). A histogram's
/// buckets are its <see cref="InstrumentAdvice{T}.HistogramBucketBoundaries"/>.
/// </remarks>
internal sealed class PrometheusExporter : IDisposable
{
    private readonly Meter _meter;
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, Family> _families = new();
    private readonly Lock _scrape = new();

    public PrometheusExporter(Meter meter)
    {
        _meter = meter;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, _meter))
            {
                _families[instrument] = new Family(instrument);
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.Start();
    }

    /// <summary>The Prometheus name of an instrument of this meter.</summary>
    public static string PrometheusName(Instrument instrument)
    {
        ArgumentNullException.ThrowIfNull(instrument);
        var name = instrument.Name.Replace('.', '_');
        if (instrument.Unit == "s")
        {
            name += "_seconds";
        }

        return IsCounter(instrument) ? name + "_total" : name;
    }

    /// <summary>Everything, as the body of <c>/metrics</c>.</summary>
    public string Scrape()
    {
        var text = new StringBuilder();
        lock (_scrape)
        {
            // Observable instruments report now, into the same families as the rest.
            _listener.RecordObservableInstruments();
            foreach (var family in _families.Values.OrderBy(f => f.Name, StringComparer.Ordinal))
            {
                family.Write(text);
            }
        }

        ProcessFigures.Write(text);
        return text.ToString();
    }

    public void Dispose() => _listener.Dispose();

    private enum Kind
    {
        /// <summary>Counters and up-down counters: measurements are increments.</summary>
        Sum,

        /// <summary>Observable instruments: a measurement is the current value.</summary>
        Last,

        Histogram,
    }

    private static bool IsCounter(Instrument instrument) =>
        instrument.GetType().IsGenericType && instrument.GetType().GetGenericTypeDefinition() is var kind &&
        (kind == typeof(Counter<>) || kind == typeof(ObservableCounter<>));

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (_families.TryGetValue(instrument, out var family))
        {
            family.Record(value, tags);
        }
    }

    /// <summary>One instrument's series, one per tag set.</summary>
    private sealed class Family
    {
        private readonly ConcurrentDictionary<string, Series> _series = new(StringComparer.Ordinal);
        private readonly double[]? _buckets;
        private readonly Kind _kind;

        public Family(Instrument instrument)
        {
            Name = PrometheusName(instrument);
            Help = instrument.Description ?? "";
            var type = instrument.GetType().GetGenericTypeDefinition();
            _kind = type == typeof(Histogram<>) ? Kind.Histogram
                : type == typeof(Counter<>) || type == typeof(UpDownCounter<>) ? Kind.Sum
                : Kind.Last;
            if (_kind == Kind.Histogram)
            {
                _buckets = instrument switch
                {
                    Histogram<double> h => h.Advice?.HistogramBucketBoundaries?.ToArray(),
                    Histogram<long> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b).ToArray(),
                    Histogram<int> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b).ToArray(),
                    _ => null,
                } ?? [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
            }

            Type = _kind == Kind.Histogram ? "histogram" : IsCounter(instrument) ? "counter" : "gauge";
        }

        public string Name { get; }

        private string Help { get; }

        private string Type { get; }

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var labels = Labels(tags);
            var series = _series.GetOrAdd(labels, static (_, buckets) => new Series(buckets), _buckets);
            series.Record(_kind, value, _buckets);
        }

        public void Write(StringBuilder text)
        {
            text.Append("# HELP ").Append(Name).Append(' ').Append(Help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)).Append('\n');
            text.Append("# TYPE ").Append(Name).Append(' ').Append(Type).Append('\n');
            if (_series.IsEmpty)
            {
                // An instrument without measurements yet reads 0, so rate() and alerts see it from the start.
                new Series(_buckets).Write(text, Name, "", _buckets);
                return;
            }

            foreach (var (labels, series) in _series.OrderBy(s => s.Key, StringComparer.Ordinal))
            {
                series.Write(text, Name, labels, _kind == Kind.Histogram ? _buckets : null);
            }
        }

        private static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            if (tags.Length == 0)
            {
                return "";
            }

            var pairs = new List<KeyValuePair<string, object?>>(tags.Length);
            foreach (var tag in tags)
            {
                pairs.Add(tag);
            }

            pairs.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
            return string.Join(',', pairs.Select(p => $"{p.Key}=\"{Escape(Convert.ToString(p.Value, CultureInfo.InvariantCulture) ?? "")}\""));
        }

        private static string Escape(string value) =>
            value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
    }

    /// <summary>One series' value, or a histogram's counts per bucket, sum and count.</summary>
    private sealed class Series(double[]? buckets)
    {
        private readonly Lock _lock = new();
        private readonly long[]? _counts = buckets is null ? null : new long[buckets.Length + 1];
        private double _value;
        private long _count;

        public void Record(Kind kind, double value, double[]? bounds)
        {
            lock (_lock)
            {
                switch (kind)
                {
                    case Kind.Sum:
                        _value += value;
                        break;
                    case Kind.Last:
                        _value = value;
                        break;
                    default:
                        var bucket = Array.BinarySearch(bounds!, value);
                        // Upper bounds are inclusive (le): an exact hit counts in its own bucket.
                        _counts![bucket >= 0 ? bucket : ~bucket]++;
                        _value += value;
                        _count++;
                        break;
                }
            }
        }

        public void Write(StringBuilder text, string name, string labels, double[]? bounds)
        {
            lock (_lock)
            {
                if (bounds is null)
                {
                    Line(text, name, labels, _value);
                    return;
                }

                long cumulative = 0;
                var prefix = labels.Length == 0 ? "" : labels + ",";
                for (var i = 0; i < bounds.Length; i++)
                {
                    cumulative += _counts![i];
                    Line(text, name + "_bucket", $"{prefix}le=\"{Number(bounds[i])}\"", cumulative);
                }

                Line(text, name + "_bucket", $"{prefix}le=\"+Inf\"", _count);
                Line(text, name + "_sum", labels, _value);
                Line(text, name + "_count", labels, _count);
            }
        }
    }

    private static void Line(StringBuilder text, string name, string labels, double value)
    {
        text.Append(name);
        if (labels.Length > 0)
        {
            text.Append('{').Append(labels).Append('}');
        }

        text.Append(' ').Append(Number(value)).Append('\n');
    }

    private static string Number(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf" : double.IsNegativeInfinity(value) ? "-Inf" : value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>The process's own figures, under the names Prometheus client libraries use.</summary>
    private static class ProcessFigures
    {
        private static readonly double StartTime = new DateTimeOffset(Process.GetCurrentProcess().StartTime).ToUnixTimeMilliseconds() / 1000.0;

        public static void Write(StringBuilder text)
        {
            using var process = Process.GetCurrentProcess();
            Gauge(text, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", process.TotalProcessorTime.TotalSeconds);
            Gauge(text, "process_working_set_bytes", "gauge", "Process working set.", process.WorkingSet64);
            Gauge(text, "process_private_memory_bytes", "gauge", "Process private memory size.", process.PrivateMemorySize64);
            Gauge(text, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", process.VirtualMemorySize64);
            Gauge(text, "process_num_threads", "gauge", "Total number of threads.", process.Threads.Count);
            Gauge(text, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", StartTime);
            Gauge(text, "dotnet_total_memory_bytes", "gauge", "Total known allocated memory.", GC.GetTotalMemory(false));
            text.Append("# HELP dotnet_collection_count_total GC collection count.\n# TYPE dotnet_collection_count_total counter\n");
            for (var generation = 0; generation <= GC.MaxGeneration; generation++)
            {
                Line(text, "dotnet_collection_count_total", $"generation=\"{generation}\"", GC.CollectionCount(generation));
            }
        }

        private static void Gauge(StringBuilder text, string name, string type, string help, double value)
        {
            text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
            Line(text, name, "", value);
        }
    }
}
