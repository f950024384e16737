package telegraphy_test

import "testing"

func BenchmarkZZUpdBase(b *testing.B) {
	db := openBench(b, false, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := updateByKey(db, i); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkZZUpdPlugin(b *testing.B) {
	db := openBench(b, true, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := updateByKey(db, i); err != nil {
			b.Fatal(err)
		}
	}
}
